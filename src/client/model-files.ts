// TensorFlow.js Layers models on the local file system: model.json plus its weight shards.
//
// tfjs's own file:// handler lives in @tensorflow/tfjs-node (native TensorFlow), which this
// package does not require; the few lines here read and write the same format (the tfjs
// "layers-model" model.json with a weightsManifest) with node:fs, and register a file:// router so
// tf.loadLayersModel('file://…/model.json') works on the WASM and CPU backends too.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';

function toArrayBuffer(bytes: Buffer): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** A load handler for a model.json path (its shards are read relative to it). */
export function fileLoadHandler(modelJsonPath: string): tf.io.IOHandler {
  const path = resolve(modelJsonPath);
  return {
    async load(): Promise<tf.io.ModelArtifacts> {
      let json: tf.io.ModelJSON;
      try {
        json = JSON.parse(readFileSync(path, 'utf8')) as tf.io.ModelJSON;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new Error(`cannot read model file ${path}: ${code ?? (err as Error).message}`);
      }
      if (!json.modelTopology)
        throw new Error(`${path} has no modelTopology (is it a TensorFlow.js Layers model.json?)`);
      return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const specs: tf.io.WeightsManifestEntry[] = [];
        const buffers: ArrayBuffer[] = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const shard of group.paths) {
            const shardPath = join(dirname(path), shard);
            try {
              buffers.push(toArrayBuffer(readFileSync(shardPath)));
            } catch (err) {
              throw new Error(
                `cannot read weight shard ${shardPath} listed in ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
              );
            }
          }
        }
        return [specs, tf.io.CompositeArrayBuffer.join(buffers)];
      });
    },
  };
}

/** A save handler writing `dir/model.json` and `dir/weights.bin` (one shard). */
export function fileSaveHandler(dir: string): tf.io.IOHandler {
  const root = resolve(dir);
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      mkdirSync(root, { recursive: true });
      const weights = artifacts.weightData
        ? Buffer.from(tf.io.CompositeArrayBuffer.join(artifacts.weightData as ArrayBuffer | ArrayBuffer[]))
        : Buffer.alloc(0);
      const json = {
        modelTopology: artifacts.modelTopology,
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }],
        ...(artifacts.trainingConfig ? { trainingConfig: artifacts.trainingConfig } : {}),
        ...(artifacts.userDefinedMetadata ? { userDefinedMetadata: artifacts.userDefinedMetadata } : {}),
      };
      writeFileSync(join(root, 'weights.bin'), weights);
      writeFileSync(join(root, 'model.json'), JSON.stringify(json));
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: 'JSON',
          weightDataBytes: weights.byteLength,
        },
      };
    },
  };
}

let routersRegistered = false;

/** Lets tf.loadLayersModel and model.save take file:// URLs (idempotent). */
export function registerFileRouters(): void {
  if (routersRegistered) return;
  routersRegistered = true;
  // @tensorflow/tfjs-node, when installed, brings its own file:// handlers; two would be ambiguous.
  if (tf.io.getLoadHandlers('file:///model.json').length > 0) return;
  const route = (url: string | string[]) => {
    const u = Array.isArray(url) ? url[0] : url;
    return typeof u === 'string' && u.startsWith('file://') ? u : null;
  };
  tf.io.registerLoadRouter((url) => {
    const u = route(url);
    // tfjs routers return null for URLs they do not handle (the IORouter type omits it).
    return (u ? fileLoadHandler(fileURLToPath(u)) : null) as tf.io.IOHandler;
  });
  tf.io.registerSaveRouter((url) => {
    const u = route(url);
    return (u ? fileSaveHandler(fileURLToPath(u)) : null) as tf.io.IOHandler;
  });
}

/** Loads a Layers model from a model.json path (or a file:// URL). */
export async function loadLayersModelFile(pathOrUrl: string): Promise<tf.LayersModel> {
  const path = pathOrUrl.startsWith('file://') ? fileURLToPath(pathOrUrl) : pathOrUrl;
  return tf.loadLayersModel(fileLoadHandler(path));
}
