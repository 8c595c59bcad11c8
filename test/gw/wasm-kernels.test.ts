// The committed WebAssembly kernels are exactly what wabt makes of their .wat sources, so the
// readable source is the one that runs.
import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compileWat, constantName } from '../../scripts/gen-wasm.mjs';

const KERNELS = fileURLToPath(new URL('../../src/ot/kernels/', import.meta.url));
interface WasmModuleApi {
  Module: {
    new (bytes: Uint8Array): object;
    exports(module: object): { name: string; kind: string }[];
    imports(module: object): { module: string; name: string; kind: string }[];
  };
}

const sources = readdirSync(KERNELS).filter((f) => f.endsWith('.wat'));

describe('WebAssembly kernels', () => {
  it('has the linear-algebra kernel source', () => {
    expect(sources).toContain('linalg.wat');
  });

  for (const name of sources) {
    it(`${name}: the committed module is the compiled source (npm run gen:wasm)`, async () => {
      const compiled = await compileWat(join(KERNELS, name));
      const generated = (await import(join(KERNELS, `${basename(name, '.wat')}.wasm.ts`))) as Record<
        string,
        string
      >;
      const committed = generated[constantName(name)];
      expect(committed, `${constantName(name)} exported by ${basename(name, '.wat')}.wasm.ts`).toBeTypeOf(
        'string',
      );
      expect(Buffer.from(committed!, 'base64').equals(Buffer.from(compiled))).toBe(true);
    });
  }

  it('linalg.wat exports matmul_f64, matmul_f32 and gram_sym_f32 over an imported shared memory', async () => {
    const { LINALG_WASM_BASE64 } = await import('../../src/ot/kernels/linalg.wasm.js');
    // The project compiles without lib.dom, where TypeScript declares WebAssembly.
    const wasm = (globalThis as unknown as { WebAssembly: WasmModuleApi }).WebAssembly;
    const module = new wasm.Module(Buffer.from(LINALG_WASM_BASE64, 'base64'));
    expect(wasm.Module.exports(module)).toEqual([
      { name: 'matmul_f64', kind: 'function' },
      { name: 'matmul_f32', kind: 'function' },
      { name: 'gram_sym_f32', kind: 'function' },
    ]);
    expect(wasm.Module.imports(module)).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
  });
});
