/**
 * nyd's remote layers for the containerd snapshotter (types.ts explains the
 * whole). Entry points:
 * - createNydRemoteHandler(opts): the handler for startSnapshotterServer({ remote });
 * - nydRemoteFromConfig(ctx): the same from `nyd snapshotter`'s config and
 *   parts, for makeSnapshotterCommand(nydRemoteFromConfig).
 */
export * from './types';
export { createNydRemoteHandler } from './create-handler';
export { nydRemoteFromConfig, type NydRemoteContext } from './from-config';
export { classifyLayer, isBootstrapLabels } from './labels';
