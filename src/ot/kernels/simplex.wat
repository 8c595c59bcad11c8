;; The two O(arcs) loops of the network simplex in src/ot/emd.ts, compiled by `npm run gen:wasm`
;; (wabt) into simplex.wasm.ts beside this file; a test checks that the committed bytes match this
;; source. They run from the first call at compiled speed (no JIT warm-up, which a cold solve
;; would otherwise spend in the interpreter), and the pricing scan compares two arcs per SIMD lane
;; pair. Pointers are byte offsets into the memory the host passes in as env.memory (one per
;; simplex, not shared); arrays: cost f64[n*m] (row-major, arc e = i*m + j), pi f64[n + m + 1]
;; (node potentials, column j at n + j), state i8[n*m] (1 = LOWER, i.e. not in the tree).
;; Results are bit-identical to the JS loops they replace: the same IEEE operations in the same
;; order, and the same first-minimum tie-breaking.

(module
  (import "env" "memory" (memory 1))

  (global $next (mut i32) (i32.const 0))
  (global $lo (mut f64) (f64.const 0))
  (global $hi (mut f64) (f64.const 0))

  ;; Where the last price() stopped: the next scan starts there.
  (func (export "next_arc") (result i32) (global.get $next))
  ;; min and max of sign*M from the last shift_costs().
  (func (export "cost_low") (result f64) (global.get $lo))
  (func (export "cost_high") (result f64) (global.get $hi))

  ;; Block search (LEMON's NetworkSimplex, as in Bonneel et al. 2011): scan arcs cyclically from
  ;; `start` in blocks of `block` and return the arc with the most negative reduced cost
  ;; c_e + pi_i - pi_j below -tol among non-tree arcs of the first block that has one, or -1 when
  ;; no arc prices out (the basis is optimal). Within a row segment pi_i is fixed, so the reduced
  ;; costs of four consecutive arcs are two f64x2 adds and subtracts; only when a lane beats the
  ;; current minimum are the four re-examined one by one (in order, with their state), which
  ;; keeps the scalar loop's result exactly.
  (func (export "price")
    (param $cost i32) (param $pi i32) (param $state i32) (param $n i32) (param $m i32)
    (param $start i32) (param $block i32) (param $tol f64) (result i32)
    (local $arcs i32) (local $min f64) (local $best i32) (local $e i32) (local $scanned i32)
    (local $left i32) (local $rowStart i32) (local $stop i32) (local $piSrc f64)
    (local $pc i32) (local $pp i32) (local $k i32) (local $c f64)
    (local $minv v128) (local $srcv v128) (local $v0 v128) (local $v1 v128)
    (local.set $arcs (i32.mul (local.get $n) (local.get $m)))
    (local.set $min (f64.neg (local.get $tol)))
    (local.set $best (i32.const -1))
    (local.set $e (local.get $start))
    (local.set $scanned (i32.const 0))
    (block $done
      (loop $blocks
        (br_if $done (i32.ge_u (local.get $scanned) (local.get $arcs)))
        (local.set $left (i32.sub (local.get $arcs) (local.get $scanned)))
        (if (i32.lt_u (local.get $block) (local.get $left)) (then (local.set $left (local.get $block))))
        (local.set $scanned (i32.add (local.get $scanned) (local.get $left)))
        (loop $segments
          ;; Row i = floor(e/m): arcs e .. stop - 1 share the source potential pi_i.
          (local.set $rowStart
            (i32.mul (i32.div_u (local.get $e) (local.get $m)) (local.get $m)))
          (local.set $stop (i32.add (local.get $rowStart) (local.get $m)))
          (if (i32.lt_u (i32.add (local.get $e) (local.get $left)) (local.get $stop))
            (then (local.set $stop (i32.add (local.get $e) (local.get $left)))))
          (local.set $left (i32.sub (local.get $left) (i32.sub (local.get $stop) (local.get $e))))
          (local.set $piSrc
            (f64.load (i32.add (local.get $pi)
              (i32.shl (i32.div_u (local.get $e) (local.get $m)) (i32.const 3)))))
          (local.set $srcv (f64x2.splat (local.get $piSrc)))
          (local.set $minv (f64x2.splat (local.get $min)))
          ;; pc -> cost[e], pp -> pi[n + (e - rowStart)].
          (local.set $pc (i32.add (local.get $cost) (i32.shl (local.get $e) (i32.const 3))))
          (local.set $pp (i32.add (local.get $pi)
            (i32.shl (i32.add (local.get $n) (i32.sub (local.get $e) (local.get $rowStart))) (i32.const 3))))
          (block $vectorDone
            (loop $vector
              (br_if $vectorDone (i32.gt_u (i32.add (local.get $e) (i32.const 4)) (local.get $stop)))
              (local.set $v0 (f64x2.sub (f64x2.add (v128.load (local.get $pc)) (local.get $srcv))
                                        (v128.load (local.get $pp))))
              (local.set $v1 (f64x2.sub (f64x2.add (v128.load offset=16 (local.get $pc)) (local.get $srcv))
                                        (v128.load offset=16 (local.get $pp))))
              (if (v128.any_true (v128.or (f64x2.lt (local.get $v0) (local.get $minv))
                                          (f64x2.lt (local.get $v1) (local.get $minv))))
                (then
                  (local.set $k (i32.const 0))
                  (loop $four
                    (local.set $c (f64.sub
                      (f64.add (f64.load (i32.add (local.get $pc) (i32.shl (local.get $k) (i32.const 3))))
                               (local.get $piSrc))
                      (f64.load (i32.add (local.get $pp) (i32.shl (local.get $k) (i32.const 3))))))
                    (if (f64.lt (local.get $c) (local.get $min))
                      (then
                        (if (i32.eq (i32.load8_s (i32.add (local.get $state) (i32.add (local.get $e) (local.get $k))))
                                    (i32.const 1))
                          (then
                            (local.set $min (local.get $c))
                            (local.set $best (i32.add (local.get $e) (local.get $k)))))))
                    (local.set $k (i32.add (local.get $k) (i32.const 1)))
                    (br_if $four (i32.lt_u (local.get $k) (i32.const 4))))
                  (local.set $minv (f64x2.splat (local.get $min)))))
              (local.set $e (i32.add (local.get $e) (i32.const 4)))
              (local.set $pc (i32.add (local.get $pc) (i32.const 32)))
              (local.set $pp (i32.add (local.get $pp) (i32.const 32)))
              (br $vector)))
          (block $scalarDone
            (loop $scalar
              (br_if $scalarDone (i32.ge_u (local.get $e) (local.get $stop)))
              (local.set $c (f64.sub (f64.add (f64.load (local.get $pc)) (local.get $piSrc))
                                     (f64.load (local.get $pp))))
              (if (f64.lt (local.get $c) (local.get $min))
                (then
                  (if (i32.eq (i32.load8_s (i32.add (local.get $state) (local.get $e))) (i32.const 1))
                    (then
                      (local.set $min (local.get $c))
                      (local.set $best (local.get $e))))))
              (local.set $e (i32.add (local.get $e) (i32.const 1)))
              (local.set $pc (i32.add (local.get $pc) (i32.const 8)))
              (local.set $pp (i32.add (local.get $pp) (i32.const 8)))
              (br $scalar)))
          (if (i32.eq (local.get $e) (local.get $arcs)) (then (local.set $e (i32.const 0))))
          (br_if $segments (i32.gt_u (local.get $left) (i32.const 0))))
        (br_if $done (i32.ge_s (local.get $best) (i32.const 0)))
        (br $blocks)))
    (global.set $next (local.get $e))
    (local.get $best))

  ;; cost[e] <- sign*cost[e] - min_e(sign*cost[e]) in place for e < count (costs shifted to be
  ;; >= 0, which leaves the optimal plan unchanged since the total mass is fixed); the min and max
  ;; of sign*cost are left in cost_low()/cost_high(). Returns the first e whose cost is not finite
  ;; (nothing changed then), else -1. Two lanes at a time: pmin/pmax are the scalar
  ;; "x < lo ? x : lo" per lane, and the shift is the same multiply and subtract per entry.
  (func (export "shift_costs") (param $cost i32) (param $count i32) (param $sign f64) (result i32)
    (local $e i32) (local $p i32) (local $x f64) (local $t f64) (local $lo f64) (local $hi f64) (local $pairs i32)
    (local $xv v128) (local $lov v128) (local $hiv v128) (local $signv v128) (local $bad v128)
    (local.set $signv (f64x2.splat (local.get $sign)))
    (local.set $lov (f64x2.splat (f64.const inf)))
    (local.set $hiv (f64x2.splat (f64.const -inf)))
    (local.set $bad (f64x2.splat (f64.const 0)))
    (local.set $pairs (i32.and (local.get $count) (i32.const -2)))
    (local.set $p (local.get $cost))
    (local.set $e (i32.const 0))
    (block $scanned
      (loop $scan
        (br_if $scanned (i32.ge_u (local.get $e) (local.get $pairs)))
        (local.set $xv (f64x2.mul (local.get $signv) (v128.load (local.get $p))))
        ;; x - x is 0 for finite x and NaN for +-inf and NaN; the sum stays 0 only if all were finite.
        (local.set $bad (f64x2.add (local.get $bad) (f64x2.sub (local.get $xv) (local.get $xv))))
        (local.set $lov (f64x2.pmin (local.get $lov) (local.get $xv)))
        (local.set $hiv (f64x2.pmax (local.get $hiv) (local.get $xv)))
        (local.set $e (i32.add (local.get $e) (i32.const 2)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $scan)))
    (local.set $lo (f64x2.extract_lane 0 (local.get $lov)))
    (local.set $x (f64x2.extract_lane 1 (local.get $lov)))
    (if (f64.lt (local.get $x) (local.get $lo)) (then (local.set $lo (local.get $x))))
    (local.set $hi (f64x2.extract_lane 0 (local.get $hiv)))
    (local.set $x (f64x2.extract_lane 1 (local.get $hiv)))
    (if (f64.gt (local.get $x) (local.get $hi)) (then (local.set $hi (local.get $x))))
    (local.set $x (f64.add (f64x2.extract_lane 0 (local.get $bad)) (f64x2.extract_lane 1 (local.get $bad))))
    ;; An odd count leaves one entry.
    (if (i32.lt_u (local.get $pairs) (local.get $count))
      (then
        (local.set $t (f64.mul (local.get $sign) (f64.load (local.get $p))))
        (local.set $x (f64.add (local.get $x) (f64.sub (local.get $t) (local.get $t))))
        (if (f64.lt (local.get $t) (local.get $lo)) (then (local.set $lo (local.get $t))))
        (if (f64.gt (local.get $t) (local.get $hi)) (then (local.set $hi (local.get $t))))))
    ;; Some cost is not finite: find the first, in order.
    (if (f64.ne (local.get $x) (f64.const 0))
      (then
        (local.set $p (local.get $cost))
        (local.set $e (i32.const 0))
        (loop $find
          (local.set $x (f64.mul (local.get $sign) (f64.load (local.get $p))))
          (if (f64.ne (f64.sub (local.get $x) (local.get $x)) (f64.const 0))
            (then (return (local.get $e))))
          (local.set $e (i32.add (local.get $e) (i32.const 1)))
          (local.set $p (i32.add (local.get $p) (i32.const 8)))
          (br_if $find (i32.lt_u (local.get $e) (local.get $count))))))
    (local.set $lov (f64x2.splat (local.get $lo)))
    (local.set $p (local.get $cost))
    (local.set $e (i32.const 0))
    (block $shifted
      (loop $shift
        (br_if $shifted (i32.ge_u (local.get $e) (local.get $pairs)))
        (v128.store (local.get $p)
          (f64x2.sub (f64x2.mul (local.get $signv) (v128.load (local.get $p))) (local.get $lov)))
        (local.set $e (i32.add (local.get $e) (i32.const 2)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $shift)))
    (if (i32.lt_u (local.get $pairs) (local.get $count))
      (then
        (f64.store (local.get $p)
          (f64.sub (f64.mul (local.get $sign) (f64.load (local.get $p))) (local.get $lo)))))
    (global.set $lo (local.get $lo))
    (global.set $hi (local.get $hi))
    (i32.const -1))
)
