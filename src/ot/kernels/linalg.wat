;; WebAssembly SIMD kernels for src/ot/linalg.ts, compiled by `npm run gen:wasm` (wabt) into
;; linalg.wasm.ts beside this file; a test checks that the committed bytes match this source.
;; Pointers are byte offsets into the shared memory the host passes in as env.memory; every thread
;; working on a product instantiates this module on the same memory and calls the same export.
;;
;; Layout (packed by the host, as in Goto & van de Geijn 2008, "Anatomy of high-performance
;; matrix multiplication"): A in micro-panels of 4 rows, a[(t·k + p)·4 + r] = A[4t + r, p]; B in
;; panels of one C tile's width (4 f64 or 8 f32 columns), b[(j·k + p)·w + c] = B[p, w·j + c]. A
;; 4 × w tile of C lives in eight v128 registers while p runs over 0…k−1: per p two loads of B and
;; four splat-loads of A for eight multiplies and eight adds. (Taller tiles spill: V8 allocates 15
;; xmm registers and needs one for each product before its add; with fused multiply-add, 5×4 and
;; 6×4 f64 tiles still measured at half the rate of 4×4, and 3×6 within 3 % of it.) Each entry of
;; C is accumulated as
;; Σ_p A_ip B_pj in increasing p with separate multiply and add (no fused multiply-add), the order
;; of linalg.ts's JS kernel, so f64 results are bit-identical to it.
;;
;; Work is split into blocks (a slab of row tiles × a group of column panels), claimed one at a
;; time with an atomic increment of the counter at `counter`: any number of threads (one included)
;; can run the same call, each taking blocks until none are left, so a late or busy helper costs
;; nothing.

(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; tile_f64(a, b, end, c, cs): one 4×4 block of C at c (row stride cs bytes) +=
  ;; Σ_p a[p]ᵀ b[p] over the packed micro-panels a (4 f64/p) and b (4 f64/p); end = a + (number of p)·32; C starts from 0 when first ≠ 0.
  (func $tile_f64 (param $a i32) (param $b i32) (param $end i32) (param $c i32) (param $cs i32) (param $first i32)
    (local $acc00 v128) (local $acc01 v128) (local $acc10 v128) (local $acc11 v128) (local $acc20 v128) (local $acc21 v128) (local $acc30 v128) (local $acc31 v128)
    (local $b0 v128) (local $b1 v128) (local $x v128) (local $c_row i32)
    ;; Continue the sums stored in C unless this is the first block of p (exact: f64/f32 stores round-trip).
    (if (i32.eqz (local.get $first))
      (then
        (local.set $c_row (local.get $c))
        (local.set $acc00 (v128.load (local.get $c_row)))
        (local.set $acc01 (v128.load offset=16 (local.get $c_row)))
        (local.set $c_row (i32.add (local.get $c_row) (local.get $cs)))
        (local.set $acc10 (v128.load (local.get $c_row)))
        (local.set $acc11 (v128.load offset=16 (local.get $c_row)))
        (local.set $c_row (i32.add (local.get $c_row) (local.get $cs)))
        (local.set $acc20 (v128.load (local.get $c_row)))
        (local.set $acc21 (v128.load offset=16 (local.get $c_row)))
        (local.set $c_row (i32.add (local.get $c_row) (local.get $cs)))
        (local.set $acc30 (v128.load (local.get $c_row)))
        (local.set $acc31 (v128.load offset=16 (local.get $c_row)))
      ))
    (loop $p
      (local.set $b0 (v128.load (local.get $b)))
      (local.set $b1 (v128.load offset=16 (local.get $b)))
      (local.set $x (v128.load64_splat (local.get $a)))
      (local.set $acc00 (f64x2.add (local.get $acc00) (f64x2.mul (local.get $x) (local.get $b0))))
      (local.set $acc01 (f64x2.add (local.get $acc01) (f64x2.mul (local.get $x) (local.get $b1))))
      (local.set $x (v128.load64_splat offset=8 (local.get $a)))
      (local.set $acc10 (f64x2.add (local.get $acc10) (f64x2.mul (local.get $x) (local.get $b0))))
      (local.set $acc11 (f64x2.add (local.get $acc11) (f64x2.mul (local.get $x) (local.get $b1))))
      (local.set $x (v128.load64_splat offset=16 (local.get $a)))
      (local.set $acc20 (f64x2.add (local.get $acc20) (f64x2.mul (local.get $x) (local.get $b0))))
      (local.set $acc21 (f64x2.add (local.get $acc21) (f64x2.mul (local.get $x) (local.get $b1))))
      (local.set $x (v128.load64_splat offset=24 (local.get $a)))
      (local.set $acc30 (f64x2.add (local.get $acc30) (f64x2.mul (local.get $x) (local.get $b0))))
      (local.set $acc31 (f64x2.add (local.get $acc31) (f64x2.mul (local.get $x) (local.get $b1))))
      (local.set $a (i32.add (local.get $a) (i32.const 32)))
      (local.set $b (i32.add (local.get $b) (i32.const 32)))
      (br_if $p (i32.lt_u (local.get $a) (local.get $end))))
    (v128.store (local.get $c) (local.get $acc00))
    (v128.store offset=16 (local.get $c) (local.get $acc01))
    (local.set $c (i32.add (local.get $c) (local.get $cs)))
    (v128.store (local.get $c) (local.get $acc10))
    (v128.store offset=16 (local.get $c) (local.get $acc11))
    (local.set $c (i32.add (local.get $c) (local.get $cs)))
    (v128.store (local.get $c) (local.get $acc20))
    (v128.store offset=16 (local.get $c) (local.get $acc21))
    (local.set $c (i32.add (local.get $c) (local.get $cs)))
    (v128.store (local.get $c) (local.get $acc30))
    (v128.store offset=16 (local.get $c) (local.get $acc31))
  )

  ;; tile_f32(a, b, end, c, cs): one 4×8 block of C at c (row stride cs bytes) +=
  ;; Σ_p a[p]ᵀ b[p] over the packed micro-panels a (4 f32/p) and b (8 f32/p); end = a + (number of p)·16; C starts from 0 when first ≠ 0.
  (func $tile_f32 (param $a i32) (param $b i32) (param $end i32) (param $c i32) (param $cs i32) (param $first i32)
    (local $acc00 v128) (local $acc01 v128) (local $acc10 v128) (local $acc11 v128) (local $acc20 v128) (local $acc21 v128) (local $acc30 v128) (local $acc31 v128)
    (local $b0 v128) (local $b1 v128) (local $x v128) (local $c_row i32)
    ;; Continue the sums stored in C unless this is the first block of p (exact: f64/f32 stores round-trip).
    (if (i32.eqz (local.get $first))
      (then
        (local.set $c_row (local.get $c))
        (local.set $acc00 (v128.load (local.get $c_row)))
        (local.set $acc01 (v128.load offset=16 (local.get $c_row)))
        (local.set $c_row (i32.add (local.get $c_row) (local.get $cs)))
        (local.set $acc10 (v128.load (local.get $c_row)))
        (local.set $acc11 (v128.load offset=16 (local.get $c_row)))
        (local.set $c_row (i32.add (local.get $c_row) (local.get $cs)))
        (local.set $acc20 (v128.load (local.get $c_row)))
        (local.set $acc21 (v128.load offset=16 (local.get $c_row)))
        (local.set $c_row (i32.add (local.get $c_row) (local.get $cs)))
        (local.set $acc30 (v128.load (local.get $c_row)))
        (local.set $acc31 (v128.load offset=16 (local.get $c_row)))
      ))
    (loop $p
      (local.set $b0 (v128.load (local.get $b)))
      (local.set $b1 (v128.load offset=16 (local.get $b)))
      (local.set $x (v128.load32_splat (local.get $a)))
      (local.set $acc00 (f32x4.add (local.get $acc00) (f32x4.mul (local.get $x) (local.get $b0))))
      (local.set $acc01 (f32x4.add (local.get $acc01) (f32x4.mul (local.get $x) (local.get $b1))))
      (local.set $x (v128.load32_splat offset=4 (local.get $a)))
      (local.set $acc10 (f32x4.add (local.get $acc10) (f32x4.mul (local.get $x) (local.get $b0))))
      (local.set $acc11 (f32x4.add (local.get $acc11) (f32x4.mul (local.get $x) (local.get $b1))))
      (local.set $x (v128.load32_splat offset=8 (local.get $a)))
      (local.set $acc20 (f32x4.add (local.get $acc20) (f32x4.mul (local.get $x) (local.get $b0))))
      (local.set $acc21 (f32x4.add (local.get $acc21) (f32x4.mul (local.get $x) (local.get $b1))))
      (local.set $x (v128.load32_splat offset=12 (local.get $a)))
      (local.set $acc30 (f32x4.add (local.get $acc30) (f32x4.mul (local.get $x) (local.get $b0))))
      (local.set $acc31 (f32x4.add (local.get $acc31) (f32x4.mul (local.get $x) (local.get $b1))))
      (local.set $a (i32.add (local.get $a) (i32.const 16)))
      (local.set $b (i32.add (local.get $b) (i32.const 32)))
      (br_if $p (i32.lt_u (local.get $a) (local.get $end))))
    (v128.store (local.get $c) (local.get $acc00))
    (v128.store offset=16 (local.get $c) (local.get $acc01))
    (local.set $c (i32.add (local.get $c) (local.get $cs)))
    (v128.store (local.get $c) (local.get $acc10))
    (v128.store offset=16 (local.get $c) (local.get $acc11))
    (local.set $c (i32.add (local.get $c) (local.get $cs)))
    (v128.store (local.get $c) (local.get $acc20))
    (v128.store offset=16 (local.get $c) (local.get $acc21))
    (local.set $c (i32.add (local.get $c) (local.get $cs)))
    (v128.store (local.get $c) (local.get $acc30))
    (v128.store offset=16 (local.get $c) (local.get $acc31))
  )

  ;; matmul_f64(a, b, c, row_tiles, k, panels, cs, kc, block_tiles, block_panels, counter):
  ;; C (4·row_tiles × 4·panels, row stride cs bytes) = A·B from the packed A (row_tiles
  ;; micro-panels) and B (panels of 4 columns), blocked as in Goto & van de Geijn 2008: a block is
  ;; block_tiles row tiles (a slab of A, sized by the host to stay in L2) × block_panels panels of
  ;; B; p runs in slices of kc (sums continue in C between slices), and within a slice each panel
  ;; of B (kc × 4, in L1) meets every row tile of the slab before the next panel is loaded.
  (func (export "matmul_f64")
    (param $a i32) (param $b i32) (param $c i32) (param $row_tiles i32) (param $k i32)
    (param $panels i32) (param $cs i32) (param $kc i32) (param $block_tiles i32)
    (param $block_panels i32) (param $counter i32)
    (local $col_groups i32) (local $blocks i32) (local $block i32)
    (local $t i32) (local $t0 i32) (local $t1 i32) (local $j i32) (local $j0 i32) (local $j1 i32)
    (local $p0 i32) (local $p1 i32) (local $a_bytes i32) (local $b_bytes i32) (local $a_ptr i32)
    (local.set $a_bytes (i32.mul (local.get $k) (i32.const 32)))
    (local.set $b_bytes (i32.shl (local.get $k) (i32.const 5)))
    (local.set $col_groups
      (i32.div_u (i32.add (local.get $panels) (i32.sub (local.get $block_panels) (i32.const 1))) (local.get $block_panels)))
    (local.set $blocks
      (i32.mul (local.get $col_groups)
        (i32.div_u (i32.add (local.get $row_tiles) (i32.sub (local.get $block_tiles) (i32.const 1))) (local.get $block_tiles))))
    (block $done
      (loop $claim
        (local.set $block (i32.atomic.rmw.add (local.get $counter) (i32.const 1)))
        (br_if $done (i32.ge_u (local.get $block) (local.get $blocks)))
        (local.set $t0 (i32.mul (i32.div_u (local.get $block) (local.get $col_groups)) (local.get $block_tiles)))
        (local.set $t1 (i32.add (local.get $t0) (local.get $block_tiles)))
        (if (i32.gt_u (local.get $t1) (local.get $row_tiles)) (then (local.set $t1 (local.get $row_tiles))))
        (local.set $j0 (i32.mul (i32.rem_u (local.get $block) (local.get $col_groups)) (local.get $block_panels)))
        (local.set $j1 (i32.add (local.get $j0) (local.get $block_panels)))
        (if (i32.gt_u (local.get $j1) (local.get $panels)) (then (local.set $j1 (local.get $panels))))
        (local.set $p0 (i32.const 0))
        (loop $depth
          (local.set $p1 (i32.add (local.get $p0) (local.get $kc)))
          (if (i32.gt_u (local.get $p1) (local.get $k)) (then (local.set $p1 (local.get $k))))
          (local.set $j (local.get $j0))
          (loop $cols
            (local.set $t (local.get $t0))
            (loop $rows
              (local.set $a_ptr
                (i32.add (i32.add (local.get $a) (i32.mul (local.get $t) (local.get $a_bytes)))
                  (i32.mul (local.get $p0) (i32.const 32))))
              (call $tile_f64
                (local.get $a_ptr)
                (i32.add (i32.add (local.get $b) (i32.mul (local.get $j) (local.get $b_bytes)))
                  (i32.shl (local.get $p0) (i32.const 5)))
                (i32.add (local.get $a_ptr) (i32.mul (i32.sub (local.get $p1) (local.get $p0)) (i32.const 32)))
                (i32.add (local.get $c)
                  (i32.add (i32.mul (i32.mul (local.get $t) (i32.const 4)) (local.get $cs))
                    (i32.shl (local.get $j) (i32.const 5))))
                (local.get $cs)
                (i32.eqz (local.get $p0)))
              (local.set $t (i32.add (local.get $t) (i32.const 1)))
              (br_if $rows (i32.lt_u (local.get $t) (local.get $t1))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br_if $cols (i32.lt_u (local.get $j) (local.get $j1))))
          (local.set $p0 (local.get $p1))
          (br_if $depth (i32.lt_u (local.get $p0) (local.get $k))))
        (br $claim))))

  ;; matmul_f32(a, b, c, row_tiles, k, panels, cs, kc, block_tiles, block_panels, counter):
  ;; C (4·row_tiles × 8·panels, row stride cs bytes) = A·B in float32, as matmul_f64 with panels
  ;; of 8 columns.
  (func (export "matmul_f32")
    (param $a i32) (param $b i32) (param $c i32) (param $row_tiles i32) (param $k i32)
    (param $panels i32) (param $cs i32) (param $kc i32) (param $block_tiles i32)
    (param $block_panels i32) (param $counter i32)
    (local $col_groups i32) (local $blocks i32) (local $block i32)
    (local $t i32) (local $t0 i32) (local $t1 i32) (local $j i32) (local $j0 i32) (local $j1 i32)
    (local $p0 i32) (local $p1 i32) (local $a_bytes i32) (local $b_bytes i32) (local $a_ptr i32)
    (local.set $a_bytes (i32.mul (local.get $k) (i32.const 16)))
    (local.set $b_bytes (i32.shl (local.get $k) (i32.const 5)))
    (local.set $col_groups
      (i32.div_u (i32.add (local.get $panels) (i32.sub (local.get $block_panels) (i32.const 1))) (local.get $block_panels)))
    (local.set $blocks
      (i32.mul (local.get $col_groups)
        (i32.div_u (i32.add (local.get $row_tiles) (i32.sub (local.get $block_tiles) (i32.const 1))) (local.get $block_tiles))))
    (block $done
      (loop $claim
        (local.set $block (i32.atomic.rmw.add (local.get $counter) (i32.const 1)))
        (br_if $done (i32.ge_u (local.get $block) (local.get $blocks)))
        (local.set $t0 (i32.mul (i32.div_u (local.get $block) (local.get $col_groups)) (local.get $block_tiles)))
        (local.set $t1 (i32.add (local.get $t0) (local.get $block_tiles)))
        (if (i32.gt_u (local.get $t1) (local.get $row_tiles)) (then (local.set $t1 (local.get $row_tiles))))
        (local.set $j0 (i32.mul (i32.rem_u (local.get $block) (local.get $col_groups)) (local.get $block_panels)))
        (local.set $j1 (i32.add (local.get $j0) (local.get $block_panels)))
        (if (i32.gt_u (local.get $j1) (local.get $panels)) (then (local.set $j1 (local.get $panels))))
        (local.set $p0 (i32.const 0))
        (loop $depth
          (local.set $p1 (i32.add (local.get $p0) (local.get $kc)))
          (if (i32.gt_u (local.get $p1) (local.get $k)) (then (local.set $p1 (local.get $k))))
          (local.set $j (local.get $j0))
          (loop $cols
            (local.set $t (local.get $t0))
            (loop $rows
              (local.set $a_ptr
                (i32.add (i32.add (local.get $a) (i32.mul (local.get $t) (local.get $a_bytes)))
                  (i32.mul (local.get $p0) (i32.const 16))))
              (call $tile_f32
                (local.get $a_ptr)
                (i32.add (i32.add (local.get $b) (i32.mul (local.get $j) (local.get $b_bytes)))
                  (i32.shl (local.get $p0) (i32.const 5)))
                (i32.add (local.get $a_ptr) (i32.mul (i32.sub (local.get $p1) (local.get $p0)) (i32.const 16)))
                (i32.add (local.get $c)
                  (i32.add (i32.mul (i32.mul (local.get $t) (i32.const 4)) (local.get $cs))
                    (i32.shl (local.get $j) (i32.const 5))))
                (local.get $cs)
                (i32.eqz (local.get $p0)))
              (local.set $t (i32.add (local.get $t) (i32.const 1)))
              (br_if $rows (i32.lt_u (local.get $t) (local.get $t1))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br_if $cols (i32.lt_u (local.get $j) (local.get $j1))))
          (local.set $p0 (local.get $p1))
          (br_if $depth (i32.lt_u (local.get $p0) (local.get $k))))
        (br $claim))))

  ;; tile_sym_f32(a, b, end, c, ct, cs, scale, bound): one 4×8 tile of S = clamp(scale·X Xᵀ,
  ;; −bound, bound) from whole sums over p (no slicing of d, so the epilogue sees final sums).
  ;; a: 4 rows of X inside an 8-row panel (stride 32 bytes per p; end = a + d·32), b: an 8-row
  ;; panel. The tile is stored at c (4 rows × 8 columns) and, transposed in registers (4×4
  ;; unpack/move shuffles), at ct (8 rows × 4 columns): the mirror half of S costs 8 stores here
  ;; instead of a separate pass over an n × n matrix. Where a tile straddles the diagonal both
  ;; stores write the same values (x_i·x_k and x_k·x_i round alike; the sums run in the same order).
  (func $tile_sym_f32 (param $a i32) (param $b i32) (param $end i32) (param $c i32) (param $ct i32)
    (param $cs i32) (param $scale f32) (param $bound f32)
    (local $acc00 v128) (local $acc01 v128) (local $acc10 v128) (local $acc11 v128) (local $acc20 v128) (local $acc21 v128) (local $acc30 v128) (local $acc31 v128)
    (local $b0 v128) (local $b1 v128) (local $x v128) (local $lo v128) (local $hi v128) (local $s v128)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (loop $p
      (local.set $b0 (v128.load (local.get $b)))
      (local.set $b1 (v128.load offset=16 (local.get $b)))
      (local.set $x (v128.load32_splat (local.get $a)))
      (local.set $acc00 (f32x4.add (local.get $acc00) (f32x4.mul (local.get $x) (local.get $b0))))
      (local.set $acc01 (f32x4.add (local.get $acc01) (f32x4.mul (local.get $x) (local.get $b1))))
      (local.set $x (v128.load32_splat offset=4 (local.get $a)))
      (local.set $acc10 (f32x4.add (local.get $acc10) (f32x4.mul (local.get $x) (local.get $b0))))
      (local.set $acc11 (f32x4.add (local.get $acc11) (f32x4.mul (local.get $x) (local.get $b1))))
      (local.set $x (v128.load32_splat offset=8 (local.get $a)))
      (local.set $acc20 (f32x4.add (local.get $acc20) (f32x4.mul (local.get $x) (local.get $b0))))
      (local.set $acc21 (f32x4.add (local.get $acc21) (f32x4.mul (local.get $x) (local.get $b1))))
      (local.set $x (v128.load32_splat offset=12 (local.get $a)))
      (local.set $acc30 (f32x4.add (local.get $acc30) (f32x4.mul (local.get $x) (local.get $b0))))
      (local.set $acc31 (f32x4.add (local.get $acc31) (f32x4.mul (local.get $x) (local.get $b1))))
      (local.set $a (i32.add (local.get $a) (i32.const 32)))
      (local.set $b (i32.add (local.get $b) (i32.const 32)))
      (br_if $p (i32.lt_u (local.get $a) (local.get $end))))
    ;; Epilogue: scale and clamp (pmax/pmin: one minps/maxps each on x86).
    (local.set $s (f32x4.splat (local.get $scale)))
    (local.set $hi (f32x4.splat (local.get $bound)))
    (local.set $lo (f32x4.neg (local.get $hi)))
    (local.set $acc00 (f32x4.pmin (local.get $hi) (f32x4.pmax (local.get $lo) (f32x4.mul (local.get $acc00) (local.get $s)))))
    (local.set $acc01 (f32x4.pmin (local.get $hi) (f32x4.pmax (local.get $lo) (f32x4.mul (local.get $acc01) (local.get $s)))))
    (local.set $acc10 (f32x4.pmin (local.get $hi) (f32x4.pmax (local.get $lo) (f32x4.mul (local.get $acc10) (local.get $s)))))
    (local.set $acc11 (f32x4.pmin (local.get $hi) (f32x4.pmax (local.get $lo) (f32x4.mul (local.get $acc11) (local.get $s)))))
    (local.set $acc20 (f32x4.pmin (local.get $hi) (f32x4.pmax (local.get $lo) (f32x4.mul (local.get $acc20) (local.get $s)))))
    (local.set $acc21 (f32x4.pmin (local.get $hi) (f32x4.pmax (local.get $lo) (f32x4.mul (local.get $acc21) (local.get $s)))))
    (local.set $acc30 (f32x4.pmin (local.get $hi) (f32x4.pmax (local.get $lo) (f32x4.mul (local.get $acc30) (local.get $s)))))
    (local.set $acc31 (f32x4.pmin (local.get $hi) (f32x4.pmax (local.get $lo) (f32x4.mul (local.get $acc31) (local.get $s)))))
    (v128.store (local.get $c) (local.get $acc00))
    (v128.store offset=16 (local.get $c) (local.get $acc01))
    (local.set $c (i32.add (local.get $c) (local.get $cs)))
    (v128.store (local.get $c) (local.get $acc10))
    (v128.store offset=16 (local.get $c) (local.get $acc11))
    (local.set $c (i32.add (local.get $c) (local.get $cs)))
    (v128.store (local.get $c) (local.get $acc20))
    (v128.store offset=16 (local.get $c) (local.get $acc21))
    (local.set $c (i32.add (local.get $c) (local.get $cs)))
    (v128.store (local.get $c) (local.get $acc30))
    (v128.store offset=16 (local.get $c) (local.get $acc31))
    ;; Columns 0–3 of the tile become 4 rows of the mirror tile.
    (local.set $t0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $acc00) (local.get $acc10)))
    (local.set $t1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $acc00) (local.get $acc10)))
    (local.set $t2 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $acc20) (local.get $acc30)))
    (local.set $t3 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $acc20) (local.get $acc30)))
    (v128.store (local.get $ct) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t0) (local.get $t2)))
    (local.set $ct (i32.add (local.get $ct) (local.get $cs)))
    (v128.store (local.get $ct) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t0) (local.get $t2)))
    (local.set $ct (i32.add (local.get $ct) (local.get $cs)))
    (v128.store (local.get $ct) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t1) (local.get $t3)))
    (local.set $ct (i32.add (local.get $ct) (local.get $cs)))
    (v128.store (local.get $ct) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t1) (local.get $t3)))
    (local.set $ct (i32.add (local.get $ct) (local.get $cs)))
    ;; Columns 4–7 of the tile become 4 rows of the mirror tile.
    (local.set $t0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $acc01) (local.get $acc11)))
    (local.set $t1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $acc01) (local.get $acc11)))
    (local.set $t2 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $acc21) (local.get $acc31)))
    (local.set $t3 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $acc21) (local.get $acc31)))
    (v128.store (local.get $ct) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t0) (local.get $t2)))
    (local.set $ct (i32.add (local.get $ct) (local.get $cs)))
    (v128.store (local.get $ct) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t0) (local.get $t2)))
    (local.set $ct (i32.add (local.get $ct) (local.get $cs)))
    (v128.store (local.get $ct) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t1) (local.get $t3)))
    (local.set $ct (i32.add (local.get $ct) (local.get $cs)))
    (v128.store (local.get $ct) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t1) (local.get $t3)))
    (local.set $ct (i32.add (local.get $ct) (local.get $cs)))
  )

  ;; gram_sym_f32(x, c, panels, d, cs, consts, block_tiles, counter): the whole symmetric
  ;; S = clamp(scale·X Xᵀ, −bound, bound) for X (8·panels × d) packed once in panels of 8 rows,
  ;; x[(j·d + p)·8 + r] = X[8j + r, p]; S row-major at c with row stride cs bytes (8·panels
  ;; columns); scale and bound are the f32 values at consts and consts + 4 (in memory, because
  ;; helper threads pass integer arguments only). Only tiles touching the upper triangle are computed (n(n+1)d flops, half of a
  ;; general product), each stored twice by tile_sym_f32. A row tile t (4 rows) reads X through
  ;; the same panels (panel t/2, half t mod 2), so X is packed and cached once.
  ;;
  ;; Blocking as in Goto & van de Geijn 2008: a block is block_tiles row tiles (the host sizes
  ;; their 4·block_tiles × d slab of X to stay in L2) × up to 32 panels of 8 columns; within it
  ;; each column panel (8 × d, in L1) meets every row tile of the slab before the next panel is
  ;; loaded, so X is read from L3/memory once per slab and panel instead of once per tile.
  ;; Blocks are claimed with an atomic increment of the counter at `counter`, as in matmul_f64.
  (func (export "gram_sym_f32")
    (param $x i32) (param $c i32) (param $panels i32) (param $d i32) (param $cs i32)
    (param $consts i32) (param $block_tiles i32) (param $counter i32)
    (local $scale f32) (local $bound f32) (local $col_groups i32) (local $blocks i32) (local $block i32) (local $panel_bytes i32)
    (local $t i32) (local $t0 i32) (local $t1 i32) (local $t_stop i32) (local $j i32) (local $j0 i32) (local $j1 i32)
    (local $a_ptr i32)
    (local.set $scale (f32.load (local.get $consts)))
    (local.set $bound (f32.load offset=4 (local.get $consts)))
    (local.set $panel_bytes (i32.shl (local.get $d) (i32.const 5)))
    (local.set $col_groups (i32.shr_u (i32.add (local.get $panels) (i32.const 31)) (i32.const 5)))
    ;; Row tiles: 2·panels; row groups: ⌈2·panels / block_tiles⌉.
    (local.set $blocks
      (i32.mul (local.get $col_groups)
        (i32.div_u (i32.add (i32.shl (local.get $panels) (i32.const 1)) (i32.sub (local.get $block_tiles) (i32.const 1)))
          (local.get $block_tiles))))
    (block $done
      (loop $claim
        (local.set $block (i32.atomic.rmw.add (local.get $counter) (i32.const 1)))
        (br_if $done (i32.ge_u (local.get $block) (local.get $blocks)))
        (local.set $t0 (i32.mul (i32.div_u (local.get $block) (local.get $col_groups)) (local.get $block_tiles)))
        (local.set $t1 (i32.add (local.get $t0) (local.get $block_tiles)))
        (if (i32.gt_u (local.get $t1) (i32.shl (local.get $panels) (i32.const 1)))
          (then (local.set $t1 (i32.shl (local.get $panels) (i32.const 1)))))
        (local.set $j0 (i32.shl (i32.rem_u (local.get $block) (local.get $col_groups)) (i32.const 5)))
        (local.set $j1 (i32.add (local.get $j0) (i32.const 32)))
        (if (i32.gt_u (local.get $j1) (local.get $panels)) (then (local.set $j1 (local.get $panels))))
        ;; The whole block lies below the diagonal: its last column 8·j1 − 1 precedes row 4·t0.
        (if (i32.le_u (i32.shl (local.get $j1) (i32.const 3)) (i32.shl (local.get $t0) (i32.const 2)))
          (then (br $claim)))
        (local.set $j (local.get $j0))
        (loop $cols
          ;; Row tiles t ≤ 2j + 1 reach the diagonal or above in panel j (8j + 7 ≥ 4t).
          (local.set $t_stop (i32.add (i32.shl (local.get $j) (i32.const 1)) (i32.const 2)))
          (if (i32.gt_u (local.get $t_stop) (local.get $t1)) (then (local.set $t_stop (local.get $t1))))
          (local.set $t (local.get $t0))
          (if (i32.lt_u (local.get $t) (local.get $t_stop))
            (then
              (loop $rows
                (local.set $a_ptr
                  (i32.add (i32.add (local.get $x) (i32.mul (i32.shr_u (local.get $t) (i32.const 1)) (local.get $panel_bytes)))
                    (i32.shl (i32.and (local.get $t) (i32.const 1)) (i32.const 4))))
                (call $tile_sym_f32
                  (local.get $a_ptr)
                  (i32.add (local.get $x) (i32.mul (local.get $j) (local.get $panel_bytes)))
                  (i32.add (local.get $a_ptr) (local.get $panel_bytes))
                  (i32.add (local.get $c)
                    (i32.add (i32.mul (i32.shl (local.get $t) (i32.const 2)) (local.get $cs))
                      (i32.shl (local.get $j) (i32.const 5))))
                  (i32.add (local.get $c)
                    (i32.add (i32.mul (i32.shl (local.get $j) (i32.const 3)) (local.get $cs))
                      (i32.shl (local.get $t) (i32.const 4))))
                  (local.get $cs)
                  (local.get $scale)
                  (local.get $bound))
                (local.set $t (i32.add (local.get $t) (i32.const 1)))
                (br_if $rows (i32.lt_u (local.get $t) (local.get $t_stop))))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br_if $cols (i32.lt_u (local.get $j) (local.get $j1))))
        (br $claim))))
)
