// The evidence experiments `atomlens experiment <name>` can run.
export {
  ATOM_VS_CKA_DEFAULTS,
  ATOM_VS_CKA_TINY,
  type AtomVsCkaConfig,
  type AtomVsCkaSummary,
  runAtomVsCka,
} from './atom-vs-cka.js';
export {
  adjustedRandIndex,
  blockLabels,
  boundaryAgreement,
  describeSplit,
} from './partition.js';
export {
  DEEP_TEMPLATE_CONFIG,
  runSubnetworks,
  SUBNETWORKS_DEFAULTS,
  SUBNETWORKS_TINY,
  type SubnetworksConfig,
  type SubnetworksSummary,
} from './subnetworks.js';

export const EXPERIMENTS = {
  'atom-vs-cka': 'Atom cosine vs linear CKA over many model pairs: correlation, cost, probe robustness',
  subnetworks: 'GW layer matrices and blocks: stability over seeds and probe sizes, labels vs atoms',
} as const;

export type ExperimentName = keyof typeof EXPERIMENTS;
