// Worker-thread entry of GradientHelpers (train-shards.ts): builds a replica of one task's network
// on its own TensorFlow.js backend, then for every request loads the weights it carries and
// replies with the gradient of its shard.
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../shared/log.js';
import { type BackendPreference, initBackend } from './backend.js';
import { ContinualModel } from './model.js';
import { assignWeights, type ReplicaSpec, type ShardRequest, shardGradients } from './train-shards.js';

if (!parentPort) throw new Error('train-worker.ts must run in a worker thread (started by GradientHelpers)');
const port = parentPort;
const spec = workerData as ReplicaSpec;

try {
  await initBackend(spec.backend as BackendPreference, createLogger('train-thread', 'warn'));
  const model = new ContinualModel(spec.template, { seed: spec.seed });
  model.addTask({ id: spec.task.id, classes: spec.task.classes });
  const variables = model.trainableVariables(spec.task.id);
  port.on('message', (request: ShardRequest) => {
    try {
      assignWeights(variables, request.weights);
      const result = shardGradients(
        model,
        spec.task.id,
        variables,
        request.images,
        request.targets,
        request.batchSize,
      );
      // Copied, not transferred: on the CPU backend dataSync returns the tensor's own storage.
      port.postMessage({ result });
    } catch (err) {
      port.postMessage({ error: (err as Error).message });
    }
  });
  port.postMessage({ ready: true });
} catch (err) {
  port.postMessage({ error: (err as Error).message });
}
