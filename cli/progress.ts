/**
 * Progress on a TTY (cli-progress). Used only when stderr is a terminal; on a
 * pipe the converter gets no progress sink and stays quiet.
 *
 * Each layer has a bar while it is read and converted; when done the bar is
 * replaced by one line above the live area, so any number of layers (and of
 * platforms, whose name prefixes each line) fits the screen. Blobs and
 * manifests stored in the target are listed the same way (trackTarget).
 */
import cliProgress from 'cli-progress';
import type { ProgressSink } from '../converter/types';
import { isIndexMediaType, isManifestMediaType } from '../oci/json';
import type { Descriptor, ImageTarget } from '../oci/types';

export interface CliProgress {
  /** The sink for one image; a non-empty `label` (its platform) prefixes its lines. */
  image(label: string): ProgressSink;
  /** `target` with each stored blob and manifest reported. */
  trackTarget(target: ImageTarget): ImageTarget;
  stop(): void;
}

const mb = (n: number) => (n / 1e6).toFixed(1);
const amount = (n: number) => (n < 1e6 ? `${(n / 1e3).toFixed(1)} kB` : `${mb(n)} MB`);
const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;
const short = (digest: string) => digest.slice(7, 19);

export function createProgress(stream: NodeJS.WritableStream): CliProgress {
  const multi = new cliProgress.MultiBar(
    {
      stream: stream as NodeJS.WritableStream & { isTTY: boolean },
      format: ' {label}layer {layer} {digest} [{bar}] {percentage}% {valueMB}/{totalMB} MB',
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  let stopped = false;
  let current = '';
  const line = (text: string, label = current) => {
    if (!stopped) multi.log(` ${label ? `${label} ` : ''}${text}\n`);
  };

  const image = (label: string): ProgressSink => {
    current = label;
    const prefix = label ? `${label} ` : '';
    const bars = new Map<number, { bar: cliProgress.SingleBar; digest: string; size: number; started: number }>();
    return {
      layerStart(index, digest, size) {
        if (stopped) return;
        const bar = multi.create(Math.max(size, 1), 0, { label: prefix, layer: index, digest: short(digest), valueMB: mb(0), totalMB: mb(size) });
        bars.set(index, { bar, digest, size, started: Date.now() });
      },
      layerProgress(index, read) {
        bars.get(index)?.bar.update(read, { valueMB: mb(read) });
      },
      layerDone(index) {
        const entry = bars.get(index);
        if (!entry) return;
        bars.delete(index);
        multi.remove(entry.bar);
        line(`layer ${index} ${short(entry.digest)} done 100% ${amount(entry.size)} in ${seconds(entry.started)}`);
      },
    };
  };

  const stored = async (what: string, desc: Descriptor, put: () => Promise<void>, label = current) => {
    const started = Date.now();
    await put();
    line(`stored ${what} ${short(desc.digest)} ${amount(desc.size)} in ${seconds(started)}`, label);
  };

  const trackTarget = (target: ImageTarget): ImageTarget => ({
    name: target.name,
    tag: target.tag,
    putBlobFile: (desc, path) => stored('blob', desc, () => target.putBlobFile(desc, path)),
    putBlobBytes: (desc, bytes) => stored(isManifestMediaType(desc.mediaType) ? 'manifest' : 'blob', desc, () => target.putBlobBytes(desc, bytes)),
    putManifest: (desc, bytes, tag) => {
      const what = `${isIndexMediaType(desc.mediaType) ? 'index' : 'manifest'}${tag === undefined ? '' : ` (tag ${tag})`}`;
      // An index belongs to no one platform.
      return stored(what, desc, () => target.putManifest(desc, bytes, tag), isIndexMediaType(desc.mediaType) ? '' : current);
    },
    abort: () => target.abort(),
    close: () => target.close(),
  });

  return {
    image,
    trackTarget,
    stop() {
      if (stopped) return;
      stopped = true;
      if (multi.isActive) multi.update(); // print lines logged since the last redraw
      multi.stop();
    },
  };
}
