/**
 * Per-layer progress bars on a TTY (cli-progress). Used only when stderr is
 * a terminal; on a pipe the converter gets no progress sink and stays quiet.
 */
import cliProgress from 'cli-progress';
import type { ProgressSink } from '../converter/types';

export function createProgress(stream: NodeJS.WritableStream): ProgressSink & { stop(): void } {
  const multi = new cliProgress.MultiBar(
    {
      stream: stream as NodeJS.WritableStream & { isTTY: boolean },
      format: ' layer {layer} {digest} [{bar}] {percentage}% {valueMB}/{totalMB} MB',
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<number, cliProgress.SingleBar>();
  const mb = (n: number) => (n / 1e6).toFixed(1);
  let stopped = false;
  return {
    layerStart(index, digest, size) {
      bars.set(
        index,
        multi.create(Math.max(size, 1), 0, { layer: index, digest: digest.slice(7, 19), valueMB: mb(0), totalMB: mb(size) }),
      );
    },
    layerProgress(index, read) {
      bars.get(index)?.update(read, { valueMB: mb(read) });
    },
    layerDone(index) {
      const bar = bars.get(index);
      bar?.update(bar.getTotal(), { valueMB: mb(bar.getTotal()) });
    },
    stop() {
      if (stopped) return;
      stopped = true;
      multi.stop();
    },
  };
}
