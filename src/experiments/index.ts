// The evidence experiments `atomlens experiment <name>` can run.
export {
  ATOM_VS_CKA_DEFAULTS,
  ATOM_VS_CKA_TINY,
  type AtomVsCkaConfig,
  runAtomVsCka,
} from './atom-vs-cka.js';

export {
  runSubnetworks,
  SUBNETWORKS_DEFAULTS,
  SUBNETWORKS_TINY,
  type SubnetworksConfig,
} from './subnetworks.js';

export const EXPERIMENTS = {
  'atom-vs-cka': 'Atom cosine vs linear CKA over many model pairs: correlation, cost, probe robustness',
  subnetworks: 'GW layer matrices and blocks: stability over seeds and probe sizes, labels vs atoms',
} as const;

export type ExperimentName = keyof typeof EXPERIMENTS;
