/** wabt's parse features for the kernels (see gen-wasm.mjs). */
export const WAT_FEATURES: { simd: boolean };
/** wabt's binary writer options for the kernels (see gen-wasm.mjs). */
export const TO_BINARY_OPTIONS: {
  canonicalize_lebs: boolean;
  write_debug_names: boolean;
  relocatable: boolean;
};
/** The binary module for one .wat source. */
export function compileWat(file: string): Promise<Uint8Array>;
/** The binary module for WebAssembly text (`name` labels wabt's error messages). */
export function compileWatText(name: string, wat: string): Promise<Uint8Array>;
/** Name of the exported base64 constant for a .wat file (linalg.wat → LINALG_WASM_BASE64). */
export function constantName(file: string): string;
