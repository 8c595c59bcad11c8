// atomlens' public API: everything a federation member needs to take part with its own model and
// training loop, and the tools to make a template from a trained network. See docs/sdk.md.

export {
  type AtomConvOptions,
  atomConv2dFromTemplate,
  atomConvLayers,
  atomVariables,
  layerActivations,
  readAtoms,
  swapAtoms,
  templateMismatches,
} from './client/atom-layers.js';
// TensorFlow.js: the atom-factored layer and helpers for any Layers model.
export {
  AtomConv2D,
  type AtomConv2DArgs,
  type AtomConvActivation,
  atomConv2d,
  type TfLayerArgs,
} from './client/atomConv.js';
export { type BackendInfo, type BackendPreference, initBackend } from './client/backend.js';
export {
  type DecomposeOptions,
  type Decomposition,
  DecompositionError,
  decomposeModel,
  type LayerDecomposition,
} from './client/decompose.js';
export { factoriseKernel, type KernelFactorisation } from './client/factorise.js';
export {
  fileLoadHandler,
  fileSaveHandler,
  loadLayersModelFile,
  registerFileRouters,
} from './client/model-files.js';
// The federation client.
export {
  AtomlensClient,
  type AtomlensClientOptions,
  type BackoffPolicy,
  type FederationEvent,
  type FederationTemplate,
  gramMatrix,
  type ProbeCall,
  type ProbeFunction,
  type PushResult,
  probeLayerSummary,
  RejectedError,
  type RoundStats,
  type SdkTask,
  UnreachableError,
} from './client/sdk-client.js';
export type { Logger } from './shared/log.js';
export { type NpyArray, readNpy, writeNpy } from './shared/npy.js';
export type { ProbeSetSpec } from './shared/template.js';
// Templates: the file format, creation from a layer list, probe-set identity.
export {
  type AtomLayerTemplate,
  type AtomTemplate,
  atomTemplateToJson,
  type BuiltinLayerWiring,
  type BuiltinNetwork,
  type LayerDims,
  type LayerListOptions,
  type ProbeSetIdentity,
  parseAtomTemplate,
  parseLayerSpec,
  probeSetIdentity,
  readTemplateFile,
  TemplateFormatError,
  type TemplateProbe,
  templateFromLayerList,
  writeTemplateFile,
} from './shared/template-file.js';
export type { Pooling, ProbeSource } from './shared/wire-enums.js';
