// Import direction of the layers (README, "Code layout"):
//   shared ← ot ← analysis ← coordinator / client / operator ← cli / demo / experiments
// `npm run lint` runs `depcruise src test bench scripts examples` against these rules.

/** Folders that only consumers may import (the apps built on top of the libraries). */
const APPS = 'src/(coordinator|client|cli|operator|demo|experiments)/';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-folder-cycle',
      severity: 'error',
      comment: 'Folders import one another in one direction only; a cycle between folders hides a layer.',
      scope: 'folder',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-module-cycle',
      severity: 'error',
      comment: 'Modules import one another in one direction only.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'libraries-stay-below-apps',
      severity: 'error',
      comment: 'shared, ot and analysis are libraries: they never reach up into the coordinator, client, CLI, operator, demo or experiments.',
      from: { path: '^src/(shared|ot|analysis)/' },
      to: { path: `^${APPS}` },
    },
    {
      name: 'ot-below-analysis',
      severity: 'error',
      comment: 'Optimal transport is independent of the analysis built on it.',
      from: { path: '^src/ot/' },
      to: { path: '^src/analysis/' },
    },
    {
      name: 'shared-is-the-bottom',
      severity: 'error',
      comment: 'src/shared may use only the generated proto types from the rest of src.',
      from: { path: '^src/shared/' },
      to: { path: '^src/', pathNot: '^src/(shared|generated)/' },
    },
    {
      name: 'tensorflow-only-where-training-happens',
      severity: 'error',
      comment:
        "TensorFlow.js and the MNIST data are optional dependencies that the coordinator's production install omits: only the client, demo and experiments import them.",
      from: { path: '^src/', pathNot: '^src/(client|demo|experiments)/' },
      to: { dependencyTypes: ['npm-optional'] },
    },
    {
      name: 'coordinator-independent-of-consumers',
      severity: 'error',
      comment: 'The coordinator runs on its own: it never imports the client or any consumer.',
      from: { path: '^src/coordinator/' },
      to: { path: '^src/(client|cli|demo|experiments|operator)/' },
    },
    {
      name: 'client-independent-of-coordinator',
      severity: 'error',
      comment: 'The client talks to the coordinator through the proto contract only.',
      from: { path: '^src/client/' },
      to: { path: '^src/(coordinator|cli|demo)/' },
    },
    {
      name: 'sdk-independent-of-builtin-client',
      severity: 'error',
      comment:
        'The SDK (the package exports) knows nothing of the built-in split-MNIST client, its model or its trainer: the built-in client is a user of the SDK like any other.',
      from: { path: '^src/(index\\.ts$|client/(sdk-client|connection|identity|probe-set|atom-layers|atomConv|backend|decompose|factorise|model-files|wasmKernels)\\.ts$)' },
      to: { path: '^src/client/(client|model|train)\\.ts$' },
    },
    {
      name: 'builtin-client-uses-the-public-api',
      severity: 'error',
      comment:
        "The built-in client reaches the SDK through the package's public API (src/index.ts), as any user does; only its own data, model and trainer are imported directly.",
      from: { path: '^src/client/client\\.ts$' },
      to: { path: '^src/client/', pathNot: '^src/client/(data|model|train)\\.ts$' },
    },
    {
      name: 'operator-below-consumers',
      severity: 'error',
      comment: 'The operator dialer is a library for the CLI and the demo, not the other way round.',
      from: { path: '^src/operator/' },
      to: { path: '^src/(cli|demo)/' },
    },
    {
      name: 'demo-does-not-import-cli',
      severity: 'error',
      comment: 'The CLI starts the demo; the demo never reaches back into the CLI.',
      from: { path: '^src/demo/' },
      to: { path: '^src/cli/' },
    },
    {
      name: 'src-never-imports-tests',
      severity: 'error',
      comment: 'Production code never depends on tests, benchmarks or scripts.',
      from: { path: '^src/' },
      to: { path: '^(test|bench|scripts)/' },
    },
    {
      name: 'examples-use-the-public-api',
      severity: 'error',
      comment:
        "Examples are what a user can copy: they import atomlens by its name (the package's exports, src/index.ts here), never its internals.",
      from: { path: '^examples/' },
      to: { path: '^src/', pathNot: '^src/index\\.ts$' },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that does not resolve is a typo or a missing dependency.',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|src/generated)/' },
    parser: 'swc',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.json', '.d.ts'],
    },
  },
};
