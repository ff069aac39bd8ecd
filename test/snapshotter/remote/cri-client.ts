/**
 * A minimal CRI client (cri.proto): PullImage on containerd's socket, as the
 * kubelet calls it.
 */
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PULL_TIMEOUT_MS = 120_000;

export interface CriImageClient {
  /** Pulls `image`; resolves with the image_ref containerd answers (the image ID). */
  pullImage(image: string): Promise<string>;
  close(): void;
}

type PullFn = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { image_ref: string }) => void) => void;

export function criImageClient(socket: string): CriImageClient {
  const def = protoLoader.loadSync(path.join(__dirname, 'cri.proto'), { keepCase: true, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { runtime: { v1: { ImageService: grpc.ServiceClientConstructor } } };
  const client = new pkg.runtime.v1.ImageService(`unix:${socket}`, grpc.credentials.createInsecure());
  const pull = (client as unknown as { PullImage: PullFn }).PullImage.bind(client);
  return {
    pullImage: (image) =>
      new Promise((resolve, reject) => {
        pull({ image: { image } }, new grpc.Metadata(), { deadline: Date.now() + PULL_TIMEOUT_MS }, (err, res) =>
          err ? reject(err) : resolve(res?.image_ref ?? ''),
        );
      }),
    close: () => client.close(),
  };
}
