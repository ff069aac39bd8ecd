/**
 * An ImageSource pinned to one platform: when the reference names an image
 * index, resolve() yields the manifest the index lists for `platform`
 * (NotFound naming the platforms on offer otherwise); a reference that names
 * a manifest resolves to it unchanged. Every other call is the wrapped
 * source's, and close() closes it. Lets `nyd check|inspect|unpack
 * --platform` read one image of a multi-platform nyd index.
 */
import { MAX_MANIFEST_SIZE, isIndexMediaType, parseIndex } from '../oci/json';
import { selectManifest } from '../oci/platform';
import type { Descriptor, Fetched, ImageSource, Platform } from '../oci/types';

export function platformSource(source: ImageSource, platform: Platform): ImageSource {
  return {
    name: source.name,
    async resolve(): Promise<Fetched> {
      const root = await source.resolve();
      if (!isIndexMediaType(root.descriptor.mediaType)) return root;
      const chosen = selectManifest(parseIndex(root.bytes, root.descriptor.mediaType), platform);
      return { descriptor: chosen, bytes: await source.fetch(chosen, MAX_MANIFEST_SIZE) };
    },
    fetch: (desc: Descriptor, limit?: number) => source.fetch(desc, limit),
    openBlob: (desc: Descriptor) => source.openBlob(desc),
    readRange: (desc: Descriptor, offset: number, length: number) => source.readRange(desc, offset, length),
    close: () => source.close(),
  };
}
