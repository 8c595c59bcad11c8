;; The O(n²) and O(nnz²) loops of the dense Gromov–Wasserstein path (src/ot/gromov: set-up,
;; starts, conditional gradient) and the packing of matmul operands (src/ot/linalg.ts), compiled
;; by `npm run gen:wasm` (wabt) into loops.wasm.ts beside this file; a test checks that the
;; committed bytes match this source.
;;
;; Why WebAssembly for loops this simple: a cold process runs JS loops first in the interpreter
;; and baseline tiers, which box every f64 they compute into a heap number, so one pass over an
;; n × n matrix allocates megabytes and a first GW solve spends more time in the garbage collector
;; and the interpreter than in its arithmetic. Compiled WebAssembly runs at full speed from its
;; first call and allocates nothing.
;;
;; Pointers are byte offsets into the kernel team's shared memory (the one linalg.wat runs on,
;; kernels/team.ts), where the GW solve keeps its matrices. Results are bit-identical to the JS
;; loops they replace (which remain where WebAssembly is missing): reductions use the same IEEE
;; operations in the same order (scalar), and element-wise loops compute each entry with the same
;; operations (SIMD lanes do not change an entry's rounding).

(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; check_space(c, n, out): the one pass over the pairs i ≤ j of an n × n matrix that the
  ;; set-up's check needs (problem.ts checkedSpace): out[0] = Σ (x − x) + (y − y) (0 exactly
  ;; when every entry is finite, NaN otherwise), out[1] = max |C_ij|, out[2] = max |C_ij − C_ji|,
  ;; out[3], out[4] = the first (i, j) in row-major order reaching that maximum (as f64).
  (func (export "check_space") (param $c i32) (param $n i32) (param $out i32)
    (local $i i32) (local $j i32) (local $x f64) (local $y f64) (local $big f64) (local $d f64)
    (local $finite f64) (local $scale f64) (local $asym f64) (local $wi i32) (local $wj i32)
    (local $px i32) (local $py i32) (local $row_bytes i32)
    (local.set $row_bytes (i32.shl (local.get $n) (i32.const 3)))
    (local.set $i (i32.const 0))
    (block $done
      (loop $rows
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        ;; px → C[i, i] walking along row i; py → C[i, i] walking down column i.
        (local.set $px (i32.add (local.get $c)
          (i32.shl (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $i)) (i32.const 3))))
        (local.set $py (local.get $px))
        (local.set $j (local.get $i))
        (loop $cols
          (local.set $x (f64.load (local.get $px)))
          (local.set $y (f64.load (local.get $py)))
          (local.set $finite (f64.add (local.get $finite)
            (f64.add (f64.sub (local.get $x) (local.get $x)) (f64.sub (local.get $y) (local.get $y)))))
          (local.set $big (f64.max (f64.abs (local.get $x)) (f64.abs (local.get $y))))
          (if (f64.gt (local.get $big) (local.get $scale)) (then (local.set $scale (local.get $big))))
          (local.set $d (f64.abs (f64.sub (local.get $x) (local.get $y))))
          (if (f64.gt (local.get $d) (local.get $asym))
            (then
              (local.set $asym (local.get $d))
              (local.set $wi (local.get $i))
              (local.set $wj (local.get $j))))
          (local.set $px (i32.add (local.get $px) (i32.const 8)))
          (local.set $py (i32.add (local.get $py) (local.get $row_bytes)))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br_if $cols (i32.lt_u (local.get $j) (local.get $n))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rows)))
    (f64.store (local.get $out) (local.get $finite))
    (f64.store offset=8 (local.get $out) (local.get $scale))
    (f64.store offset=16 (local.get $out) (local.get $asym))
    (f64.store offset=24 (local.get $out) (f64.convert_i32_u (local.get $wi)))
    (f64.store offset=32 (local.get $out) (f64.convert_i32_u (local.get $wj))))

  ;; row_products(c, w, n, cw): cw = C w and returns wᵀ(C∘C)w = Σ_i w_i Σ_k C_ik² w_k, summed
  ;; in that order (problem.ts rowProducts).
  (func (export "row_products") (param $c i32) (param $w i32) (param $n i32) (param $cw i32) (result f64)
    (local $i i32) (local $k i32) (local $x f64) (local $wk f64) (local $row f64) (local $row_sq f64)
    (local $squared f64) (local $pc i32)
    (local.set $pc (local.get $c))
    (block $done
      (loop $rows
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $row (f64.const 0))
        (local.set $row_sq (f64.const 0))
        (local.set $k (i32.const 0))
        (loop $cols
          (local.set $x (f64.load (local.get $pc)))
          (local.set $wk (f64.load (i32.add (local.get $w) (i32.shl (local.get $k) (i32.const 3)))))
          (local.set $row (f64.add (local.get $row) (f64.mul (local.get $x) (local.get $wk))))
          (local.set $row_sq (f64.add (local.get $row_sq)
            (f64.mul (f64.mul (local.get $x) (local.get $x)) (local.get $wk))))
          (local.set $pc (i32.add (local.get $pc) (i32.const 8)))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br_if $cols (i32.lt_u (local.get $k) (local.get $n))))
        (f64.store (i32.add (local.get $cw) (i32.shl (local.get $i) (i32.const 3))) (local.get $row))
        (local.set $squared (f64.add (local.get $squared)
          (f64.mul (f64.load (i32.add (local.get $w) (i32.shl (local.get $i) (i32.const 3)))) (local.get $row_sq))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rows)))
    (local.get $squared))

  ;; paired_row_products(c1, c2, w, n, c1w, c2w, out): row_products of both matrices and
  ;; E(diag(w)) = Σ_i w_i Σ_k (C1_ik − C2_ik)² w_k in one pass (problem.ts pairedRowProducts);
  ;; out[0], out[1], out[2] = the two squared sums and E(diag(w)).
  (func (export "paired_row_products")
    (param $c1 i32) (param $c2 i32) (param $w i32) (param $n i32) (param $c1w i32) (param $c2w i32) (param $out i32)
    (local $i i32) (local $k i32) (local $x f64) (local $y f64) (local $wk f64) (local $wi f64) (local $d f64)
    (local $row1 f64) (local $row2 f64) (local $sq1 f64) (local $sq2 f64) (local $rid f64)
    (local $squared1 f64) (local $squared2 f64) (local $identity f64) (local $off i32) (local $pw i32)
    (block $done
      (loop $rows
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $row1 (f64.const 0))
        (local.set $row2 (f64.const 0))
        (local.set $sq1 (f64.const 0))
        (local.set $sq2 (f64.const 0))
        (local.set $rid (f64.const 0))
        (local.set $pw (local.get $w))
        (local.set $k (i32.const 0))
        (loop $cols
          (local.set $x (f64.load (i32.add (local.get $c1) (local.get $off))))
          (local.set $y (f64.load (i32.add (local.get $c2) (local.get $off))))
          (local.set $wk (f64.load (local.get $pw)))
          (local.set $row1 (f64.add (local.get $row1) (f64.mul (local.get $x) (local.get $wk))))
          (local.set $row2 (f64.add (local.get $row2) (f64.mul (local.get $y) (local.get $wk))))
          (local.set $sq1 (f64.add (local.get $sq1) (f64.mul (f64.mul (local.get $x) (local.get $x)) (local.get $wk))))
          (local.set $sq2 (f64.add (local.get $sq2) (f64.mul (f64.mul (local.get $y) (local.get $y)) (local.get $wk))))
          (local.set $d (f64.sub (local.get $x) (local.get $y)))
          (local.set $rid (f64.add (local.get $rid) (f64.mul (f64.mul (local.get $d) (local.get $d)) (local.get $wk))))
          (local.set $off (i32.add (local.get $off) (i32.const 8)))
          (local.set $pw (i32.add (local.get $pw) (i32.const 8)))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br_if $cols (i32.lt_u (local.get $k) (local.get $n))))
        (f64.store (i32.add (local.get $c1w) (i32.shl (local.get $i) (i32.const 3))) (local.get $row1))
        (f64.store (i32.add (local.get $c2w) (i32.shl (local.get $i) (i32.const 3))) (local.get $row2))
        (local.set $wi (f64.load (i32.add (local.get $w) (i32.shl (local.get $i) (i32.const 3)))))
        (local.set $squared1 (f64.add (local.get $squared1) (f64.mul (local.get $wi) (local.get $sq1))))
        (local.set $squared2 (f64.add (local.get $squared2) (f64.mul (local.get $wi) (local.get $sq2))))
        (local.set $identity (f64.add (local.get $identity) (f64.mul (local.get $wi) (local.get $rid))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rows)))
    (f64.store (local.get $out) (local.get $squared1))
    (f64.store offset=8 (local.get $out) (local.get $squared2))
    (f64.store offset=16 (local.get $out) (local.get $identity)))

  ;; scale_columns(src, w, dst, n, k): dst[i, p] = src[i, p]·w[p] for n × k matrices (C diag(w)).
  (func (export "scale_columns") (param $src i32) (param $w i32) (param $dst i32) (param $n i32) (param $k i32)
    (local $i i32) (local $p i32) (local $pw i32)
    (block $done
      (loop $rows
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $pw (local.get $w))
        (local.set $p (i32.const 0))
        (block $pairs_done
          (loop $pairs
            (br_if $pairs_done (i32.gt_u (i32.add (local.get $p) (i32.const 2)) (local.get $k)))
            (v128.store (local.get $dst) (f64x2.mul (v128.load (local.get $src)) (v128.load (local.get $pw))))
            (local.set $src (i32.add (local.get $src) (i32.const 16)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
            (local.set $pw (i32.add (local.get $pw) (i32.const 16)))
            (local.set $p (i32.add (local.get $p) (i32.const 2)))
            (br $pairs)))
        (if (i32.lt_u (local.get $p) (local.get $k))
          (then
            (f64.store (local.get $dst) (f64.mul (f64.load (local.get $src)) (f64.load (local.get $pw))))
            (local.set $src (i32.add (local.get $src) (i32.const 8)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 8)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rows))))

  ;; outer(u, v, out, n, m): out[i, j] = u_i v_j (n × m), the product start's rank-one G.
  (func (export "outer") (param $u i32) (param $v i32) (param $out i32) (param $n i32) (param $m i32)
    (local $i i32) (local $j i32) (local $pv i32) (local $ui f64) (local $uiv v128)
    (block $done
      (loop $rows
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $ui (f64.load (i32.add (local.get $u) (i32.shl (local.get $i) (i32.const 3)))))
        (local.set $uiv (f64x2.splat (local.get $ui)))
        (local.set $pv (local.get $v))
        (local.set $j (i32.const 0))
        (block $pairs_done
          (loop $pairs
            (br_if $pairs_done (i32.gt_u (i32.add (local.get $j) (i32.const 2)) (local.get $m)))
            (v128.store (local.get $out) (f64x2.mul (local.get $uiv) (v128.load (local.get $pv))))
            (local.set $out (i32.add (local.get $out) (i32.const 16)))
            (local.set $pv (i32.add (local.get $pv) (i32.const 16)))
            (local.set $j (i32.add (local.get $j) (i32.const 2)))
            (br $pairs)))
        (if (i32.lt_u (local.get $j) (local.get $m))
          (then
            (f64.store (local.get $out) (f64.mul (local.get $ui) (f64.load (local.get $pv))))
            (local.set $out (i32.add (local.get $out) (i32.const 8)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rows))))

  ;; blend(g, gc, count, a, b): g = a·g + b·gc element-wise (the step G ← (1 − α)G + α·Gc,
  ;; a = 1 − α, b = α; cg.ts).
  (func (export "blend") (param $g i32) (param $gc i32) (param $count i32) (param $a f64) (param $b f64)
    (local $end i32) (local $av v128) (local $bv v128)
    (local.set $av (f64x2.splat (local.get $a)))
    (local.set $bv (f64x2.splat (local.get $b)))
    (local.set $end (i32.add (local.get $g) (i32.shl (i32.and (local.get $count) (i32.const -2)) (i32.const 3))))
    (block $pairs_done
      (loop $pairs
        (br_if $pairs_done (i32.ge_u (local.get $g) (local.get $end)))
        (v128.store (local.get $g)
          (f64x2.add (f64x2.mul (local.get $av) (v128.load (local.get $g)))
                     (f64x2.mul (local.get $bv) (v128.load (local.get $gc)))))
        (local.set $g (i32.add (local.get $g) (i32.const 16)))
        (local.set $gc (i32.add (local.get $gc) (i32.const 16)))
        (br $pairs)))
    (if (i32.and (local.get $count) (i32.const 1))
      (then
        (f64.store (local.get $g)
          (f64.add (f64.mul (local.get $a) (f64.load (local.get $g)))
                   (f64.mul (local.get $b) (f64.load (local.get $gc))))))))

  ;; add_to(dst, src, count): dst += src element-wise.
  (func (export "add_to") (param $dst i32) (param $src i32) (param $count i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $dst) (i32.shl (i32.and (local.get $count) (i32.const -2)) (i32.const 3))))
    (block $pairs_done
      (loop $pairs
        (br_if $pairs_done (i32.ge_u (local.get $dst) (local.get $end)))
        (v128.store (local.get $dst) (f64x2.add (v128.load (local.get $dst)) (v128.load (local.get $src))))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (br $pairs)))
    (if (i32.and (local.get $count) (i32.const 1))
      (then (f64.store (local.get $dst) (f64.add (f64.load (local.get $dst)) (f64.load (local.get $src)))))))

  ;; scale(x, count, s): x ← x·s element-wise.
  (func (export "scale") (param $x i32) (param $count i32) (param $s f64)
    (local $end i32) (local $sv v128)
    (local.set $sv (f64x2.splat (local.get $s)))
    (local.set $end (i32.add (local.get $x) (i32.shl (i32.and (local.get $count) (i32.const -2)) (i32.const 3))))
    (block $pairs_done
      (loop $pairs
        (br_if $pairs_done (i32.ge_u (local.get $x) (local.get $end)))
        (v128.store (local.get $x) (f64x2.mul (v128.load (local.get $x)) (local.get $sv)))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (br $pairs)))
    (if (i32.and (local.get $count) (i32.const 1))
      (then (f64.store (local.get $x) (f64.mul (f64.load (local.get $x)) (local.get $s))))))

  ;; sparse_self_product(c1, c2, rows, cols, values, count, n, m): <C1 S C2, S> =
  ;; Σ_a s_a Σ_b s_b C1[i_a, i_b] C2[j_a, j_b] for a sparse S given as i32 rows, i32 cols and f64
  ;; values (loss.ts sparseSelfProduct: the same products, (s_b·C1)·C2, in the same order).
  (func (export "sparse_self_product")
    (param $c1 i32) (param $c2 i32) (param $rows i32) (param $cols i32) (param $values i32)
    (param $count i32) (param $n i32) (param $m i32) (result f64)
    (local $a i32) (local $b i32) (local $r1 i32) (local $r2 i32) (local $s f64) (local $total f64)
    (local $pr i32) (local $pc i32) (local $pv i32)
    (block $done
      (loop $outer
        (br_if $done (i32.ge_u (local.get $a) (local.get $count)))
        ;; r1 → row i_a of C1, r2 → row j_a of C2 (bytes).
        (local.set $r1 (i32.add (local.get $c1) (i32.shl (i32.mul
          (i32.load (i32.add (local.get $rows) (i32.shl (local.get $a) (i32.const 2)))) (local.get $n)) (i32.const 3))))
        (local.set $r2 (i32.add (local.get $c2) (i32.shl (i32.mul
          (i32.load (i32.add (local.get $cols) (i32.shl (local.get $a) (i32.const 2)))) (local.get $m)) (i32.const 3))))
        (local.set $s (f64.const 0))
        (local.set $pr (local.get $rows))
        (local.set $pc (local.get $cols))
        (local.set $pv (local.get $values))
        (local.set $b (i32.const 0))
        (loop $inner
          (local.set $s (f64.add (local.get $s)
            (f64.mul
              (f64.mul (f64.load (local.get $pv))
                       (f64.load (i32.add (local.get $r1) (i32.shl (i32.load (local.get $pr)) (i32.const 3)))))
              (f64.load (i32.add (local.get $r2) (i32.shl (i32.load (local.get $pc)) (i32.const 3)))))))
          (local.set $pr (i32.add (local.get $pr) (i32.const 4)))
          (local.set $pc (i32.add (local.get $pc) (i32.const 4)))
          (local.set $pv (i32.add (local.get $pv) (i32.const 8)))
          (local.set $b (i32.add (local.get $b) (i32.const 1)))
          (br_if $inner (i32.lt_u (local.get $b) (local.get $count))))
        (local.set $total (f64.add (local.get $total)
          (f64.mul (f64.load (i32.add (local.get $values) (i32.shl (local.get $a) (i32.const 3)))) (local.get $s))))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (br $outer)))
    (local.get $total))

  ;; sparse_rows(c2, rows, cols, values, count, m, w, distinct): for a sparse S sorted row-major,
  ;; row r of W (k × m, zero on entry) = Σ_j S_ij C2[j, :] over the r-th distinct row i of S, whose
  ;; index is written to distinct[r] (i32); returns k. Each entry of W accumulates t·C2[j, l] over
  ;; S's entries in order, as loss.ts sparseTensorProduct does.
  (func (export "sparse_rows")
    (param $c2 i32) (param $rows i32) (param $cols i32) (param $values i32) (param $count i32)
    (param $m i32) (param $w i32) (param $distinct i32) (result i32)
    (local $a i32) (local $k i32) (local $row i32) (local $prev i32) (local $t f64) (local $tv v128)
    (local $src i32) (local $dst i32) (local $l i32) (local $row_bytes i32)
    (local.set $row_bytes (i32.shl (local.get $m) (i32.const 3)))
    (local.set $prev (i32.const -1))
    (block $done
      (loop $entries
        (br_if $done (i32.ge_u (local.get $a) (local.get $count)))
        (local.set $row (i32.load (i32.add (local.get $rows) (i32.shl (local.get $a) (i32.const 2)))))
        (if (i32.ne (local.get $row) (local.get $prev))
          (then
            (i32.store (i32.add (local.get $distinct) (i32.shl (local.get $k) (i32.const 2))) (local.get $row))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (local.set $prev (local.get $row))))
        (local.set $t (f64.load (i32.add (local.get $values) (i32.shl (local.get $a) (i32.const 3)))))
        (local.set $tv (f64x2.splat (local.get $t)))
        (local.set $src (i32.add (local.get $c2) (i32.mul
          (i32.load (i32.add (local.get $cols) (i32.shl (local.get $a) (i32.const 2)))) (local.get $row_bytes))))
        (local.set $dst (i32.add (local.get $w) (i32.mul (i32.sub (local.get $k) (i32.const 1)) (local.get $row_bytes))))
        (local.set $l (i32.const 0))
        (block $pairs_done
          (loop $pairs
            (br_if $pairs_done (i32.gt_u (i32.add (local.get $l) (i32.const 2)) (local.get $m)))
            (v128.store (local.get $dst)
              (f64x2.add (v128.load (local.get $dst)) (f64x2.mul (local.get $tv) (v128.load (local.get $src)))))
            (local.set $src (i32.add (local.get $src) (i32.const 16)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
            (local.set $l (i32.add (local.get $l) (i32.const 2)))
            (br $pairs)))
        (if (i32.lt_u (local.get $l) (local.get $m))
          (then
            (f64.store (local.get $dst)
              (f64.add (f64.load (local.get $dst)) (f64.mul (local.get $t) (f64.load (local.get $src)))))))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (br $entries)))
    (local.get $k))

  ;; gather_columns(c, n, distinct, k, out): out (n × k) = the columns distinct[0…k−1] of the
  ;; n × n matrix C.
  (func (export "gather_columns") (param $c i32) (param $n i32) (param $distinct i32) (param $k i32) (param $out i32)
    (local $x i32) (local $r i32) (local $row i32)
    (block $done
      (loop $rows
        (br_if $done (i32.ge_u (local.get $x) (local.get $n)))
        (local.set $row (i32.add (local.get $c) (i32.shl (i32.mul (local.get $x) (local.get $n)) (i32.const 3))))
        (local.set $r (i32.const 0))
        (block $cols_done
          (loop $cols
            (br_if $cols_done (i32.ge_u (local.get $r) (local.get $k)))
            (f64.store (local.get $out)
              (f64.load (i32.add (local.get $row)
                (i32.shl (i32.load (i32.add (local.get $distinct) (i32.shl (local.get $r) (i32.const 2)))) (i32.const 3)))))
            (local.set $out (i32.add (local.get $out) (i32.const 8)))
            (local.set $r (i32.add (local.get $r) (i32.const 1)))
            (br $cols)))
        (local.set $x (i32.add (local.get $x) (i32.const 1)))
        (br $rows))))

  ;; pack_a_f64(src, dst, n, k): A (n × k, row-major f64) into linalg.wat's micro-panels of 4 rows,
  ;; dst[(t·k + p)·4 + r] = A[4t + r, p]. Rows n… of the last panel are left as they are (they
  ;; only feed entries of C that are never read).
  (func (export "pack_a_f64") (param $src i32) (param $dst i32) (param $n i32) (param $k i32)
    (local $i i32) (local $p i32) (local $from i32) (local $to i32)
    (block $done
      (loop $rows
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $from (i32.add (local.get $src) (i32.shl (i32.mul (local.get $i) (local.get $k)) (i32.const 3))))
        (local.set $to (i32.add (local.get $dst)
          (i32.shl (i32.add (i32.mul (i32.and (local.get $i) (i32.const -4)) (local.get $k))
                            (i32.and (local.get $i) (i32.const 3))) (i32.const 3))))
        (local.set $p (i32.const 0))
        (block $cols_done
          (loop $cols
            (br_if $cols_done (i32.ge_u (local.get $p) (local.get $k)))
            (f64.store (local.get $to) (f64.load (local.get $from)))
            (local.set $from (i32.add (local.get $from) (i32.const 8)))
            (local.set $to (i32.add (local.get $to) (i32.const 32)))
            (local.set $p (i32.add (local.get $p) (i32.const 1)))
            (br $cols)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rows))))

  ;; pack_b_f64(src, dst, k, m): B (k × m, row-major f64) into panels of 4 columns,
  ;; dst[(j·k + p)·4 + c] = B[p, 4j + c]. Columns m… of the last panel are left as they are.
  (func (export "pack_b_f64") (param $src i32) (param $dst i32) (param $k i32) (param $m i32)
    (local $p i32) (local $j i32) (local $to i32) (local $panel_bytes i32)
    (local.set $panel_bytes (i32.shl (local.get $k) (i32.const 5)))
    (block $done
      (loop $rows
        (br_if $done (i32.ge_u (local.get $p) (local.get $k)))
        (local.set $to (i32.add (local.get $dst) (i32.shl (local.get $p) (i32.const 5))))
        (local.set $j (i32.const 0))
        (block $quads_done
          (loop $quads
            (br_if $quads_done (i32.gt_u (i32.add (local.get $j) (i32.const 4)) (local.get $m)))
            (v128.store (local.get $to) (v128.load (local.get $src)))
            (v128.store offset=16 (local.get $to) (v128.load offset=16 (local.get $src)))
            (local.set $src (i32.add (local.get $src) (i32.const 32)))
            (local.set $to (i32.add (local.get $to) (local.get $panel_bytes)))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $quads)))
        (block $tail_done
          (loop $tail
            (br_if $tail_done (i32.ge_u (local.get $j) (local.get $m)))
            (f64.store (local.get $to) (f64.load (local.get $src)))
            (local.set $src (i32.add (local.get $src) (i32.const 8)))
            (local.set $to (i32.add (local.get $to) (i32.const 8)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $tail)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $rows))))
)
