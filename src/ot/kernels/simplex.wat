;; The network simplex of src/ot/emd.ts: its two O(arcs) loops and its pivots, compiled by `npm run gen:wasm`
;; (wabt) into simplex.wasm.ts beside this file; a test checks that the committed bytes match this
;; source. They run from the first call at compiled speed (no JIT warm-up, which a cold solve
;; would otherwise spend in the interpreter), and the pricing scan compares two arcs per SIMD lane
;; pair. Pointers are byte offsets into the memory the host passes in as env.memory (one per
;; simplex, not shared); arrays: cost f64[n*m] (row-major, arc e = i*m + j), pi f64[n + m + 1]
;; (node potentials, column j at n + j), state i8[n*m] (0 = LOWER, i.e. not in the tree; 1 = TREE).
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
  (func $price
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
                        (if (i32.eqz (i32.load8_s (i32.add (local.get $state) (i32.add (local.get $e) (local.get $k)))))
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
                  (if (i32.eqz (i32.load8_s (i32.add (local.get $state) (local.get $e))))
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

  ;; ---- The pivots (LEMON's NetworkSimplex, as ported in emd.ts; Kovacs 2015 for the tree
  ;; representation). Arrays by base pointer (set once by init): i32 per node parent, pred,
  ;; dir (+1: pred arc points up to the parent, -1: down), thread, rev (reverse thread),
  ;; succ (subtree size), last (last successor in thread order), dirty (scratch); f64 flow per
  ;; node, on its pred arc (non-tree arcs carry none). Arcs: n*m real ones, then n + m artificial
  ;; ones (arc n*m + u joins node u to the root); state is per arc.

  (global $nodes (mut i32) (i32.const 0))
  (global $root (mut i32) (i32.const 0))
  (global $costP (mut i32) (i32.const 0))
  (global $piP (mut i32) (i32.const 0))
  (global $stateP (mut i32) (i32.const 0))
  (global $flowP (mut i32) (i32.const 0))
  (global $parentP (mut i32) (i32.const 0))
  (global $predP (mut i32) (i32.const 0))
  (global $dirP (mut i32) (i32.const 0))
  (global $threadP (mut i32) (i32.const 0))
  (global $revP (mut i32) (i32.const 0))
  (global $succP (mut i32) (i32.const 0))
  (global $lastP (mut i32) (i32.const 0))
  (global $dirtyP (mut i32) (i32.const 0))
  (global $gn (mut i32) (i32.const 0))
  (global $gm (mut i32) (i32.const 0))
  (global $arcs (mut i32) (i32.const 0))
  (global $art (mut f64) (f64.const 0))

  (func (export "init")
    (param $n i32) (param $m i32) (param $cost i32) (param $pi i32) (param $state i32) (param $flow i32)
    (param $parent i32) (param $pred i32) (param $dir i32) (param $thread i32) (param $rev i32)
    (param $succ i32) (param $last i32) (param $dirty i32)
    (global.set $gn (local.get $n))
    (global.set $gm (local.get $m))
    (global.set $arcs (i32.mul (local.get $n) (local.get $m)))
    (global.set $nodes (i32.add (local.get $n) (local.get $m)))
    (global.set $root (i32.add (local.get $n) (local.get $m)))
    (global.set $costP (local.get $cost))
    (global.set $piP (local.get $pi))
    (global.set $stateP (local.get $state))
    (global.set $flowP (local.get $flow))
    (global.set $parentP (local.get $parent))
    (global.set $predP (local.get $pred))
    (global.set $dirP (local.get $dir))
    (global.set $threadP (local.get $thread))
    (global.set $revP (local.get $rev))
    (global.set $succP (local.get $succ))
    (global.set $lastP (local.get $last))
    (global.set $dirtyP (local.get $dirty)))

  ;; Tail node of arc e.
  (func $source (param $e i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $e) (global.get $arcs))
      (then (i32.div_u (local.get $e) (global.get $gm)))
      (else
        (if (result i32) (i32.lt_u (i32.sub (local.get $e) (global.get $arcs)) (global.get $gn))
          (then (i32.sub (local.get $e) (global.get $arcs)))
          (else (global.get $root))))))

  ;; Head node of arc e.
  (func $target (param $e i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $e) (global.get $arcs))
      (then (i32.add (global.get $gn) (i32.rem_u (local.get $e) (global.get $gm))))
      (else
        (if (result i32) (i32.lt_u (i32.sub (local.get $e) (global.get $arcs)) (global.get $gn))
          (then (global.get $root))
          (else (i32.sub (local.get $e) (global.get $arcs)))))))

  ;; Cost of arc e: real arcs their cost, artificial ones 0 (from a supply node) or art.
  (func $arcCost (param $e i32) (result f64)
    (if (result f64) (i32.lt_u (local.get $e) (global.get $arcs))
      (then (f64.load (i32.add (global.get $costP) (i32.shl (local.get $e) (i32.const 3)))))
      (else
        (if (result f64) (i32.lt_u (i32.sub (local.get $e) (global.get $arcs)) (global.get $gn))
          (then (f64.const 0))
          (else (global.get $art))))))

  ;; Pivots until no arc prices out (or maxPivots): block-search pricing from `start`, then the
  ;; cycle's join node, the leaving arc (the last blocking arc on the second side, which keeps
  ;; the tree strongly feasible; Cunningham 1976), the flow change, the tree update (LEMON 1.3
  ;; updateTreeStructure) and the potentials of the moved subtree. Returns the pivots made; the
  ;; next scan's start is in next_arc(). Traps if a cycle is unbounded (cannot happen with a
  ;; valid basis).
  (func (export "run") (param $start i32) (param $block i32) (param $tol f64) (param $art f64)
    (param $maxPivots i32) (result i32)
    (local $pivots i32) (local $inArc i32) (local $join i32) (local $u i32) (local $v i32)
    (local $first i32) (local $second i32) (local $delta f64) (local $d f64) (local $result i32)
    (local $uIn i32) (local $vIn i32) (local $uOut i32) (local $vOut i32) (local $outArc i32)
    (local $oldRev i32) (local $oldSucc i32) (local $oldLast i32) (local $threadContinue i32)
    (local $stem i32) (local $parStem i32) (local $last i32) (local $after i32) (local $dirty i32)
    (local $nextStem i32) (local $before i32) (local $i i32) (local $p i32) (local $tmpSc i32)
    (local $tmpLs i32) (local $upLimit i32) (local $lastOut i32) (local $end i32) (local $sigma f64)
    (local $w i32) (local $x i32) (local $inFlow f64)
    (global.set $art (local.get $art))
    (global.set $next (local.get $start))
    (block $optimal
      (loop $pivot
        (br_if $optimal (i32.ge_u (local.get $pivots) (local.get $maxPivots)))
        (local.set $x (global.get $next))
        (local.set $inArc
          (call $price (global.get $costP) (global.get $piP) (global.get $stateP) (global.get $gn)
            (global.get $gm) (local.get $x) (local.get $block) (local.get $tol)))
        ;; Optimal: the next solve's scan starts where this one's last successful scan stopped.
        (if (i32.lt_s (local.get $inArc) (i32.const 0))
          (then (global.set $next (local.get $x)) (br $optimal)))

        ;; Join node: climb from the deeper side (smaller subtree) until the two paths meet.
        (local.set $u (call $source (local.get $inArc)))
        (local.set $v (call $target (local.get $inArc)))
        (local.set $first (local.get $u))
        (local.set $second (local.get $v))
        (block $met
          (loop $climb
            (br_if $met (i32.eq (local.get $u) (local.get $v)))
            (if (i32.lt_s (i32.load (i32.add (global.get $succP) (i32.shl (local.get $u) (i32.const 2)))) (i32.load (i32.add (global.get $succP) (i32.shl (local.get $v) (i32.const 2)))))
              (then (local.set $u (i32.load (i32.add (global.get $parentP) (i32.shl (local.get $u) (i32.const 2))))))
              (else (local.set $v (i32.load (i32.add (global.get $parentP) (i32.shl (local.get $v) (i32.const 2)))))))
            (br $climb)))
        (local.set $join (local.get $u))

        ;; Leaving arc: from `first` up to the join flow travels down (arcs pointing up lose
        ;; flow); from `second` up, it travels up (arcs pointing down lose flow; <= takes the last).
        (local.set $delta (f64.const inf))
        (local.set $result (i32.const 0))
        (local.set $uOut (i32.const -1))
        (local.set $u (local.get $first))
        (block $done1
          (loop $side1
            (br_if $done1 (i32.eq (local.get $u) (local.get $join)))
            (if (i32.eq (i32.load (i32.add (global.get $dirP) (i32.shl (local.get $u) (i32.const 2)))) (i32.const 1))
              (then
                (local.set $d (f64.load (i32.add (global.get $flowP) (i32.shl (local.get $u) (i32.const 3)))))
                (if (f64.lt (local.get $d) (local.get $delta))
                  (then
                    (local.set $delta (local.get $d))
                    (local.set $uOut (local.get $u))
                    (local.set $result (i32.const 1))))))
            (local.set $u (i32.load (i32.add (global.get $parentP) (i32.shl (local.get $u) (i32.const 2)))))
            (br $side1)))
        (local.set $u (local.get $second))
        (block $done2
          (loop $side2
            (br_if $done2 (i32.eq (local.get $u) (local.get $join)))
            (if (i32.eq (i32.load (i32.add (global.get $dirP) (i32.shl (local.get $u) (i32.const 2)))) (i32.const -1))
              (then
                (local.set $d (f64.load (i32.add (global.get $flowP) (i32.shl (local.get $u) (i32.const 3)))))
                (if (f64.le (local.get $d) (local.get $delta))
                  (then
                    (local.set $delta (local.get $d))
                    (local.set $uOut (local.get $u))
                    (local.set $result (i32.const 2))))))
            (local.set $u (i32.load (i32.add (global.get $parentP) (i32.shl (local.get $u) (i32.const 2)))))
            (br $side2)))
        (if (i32.lt_s (local.get $uOut) (i32.const 0)) (then unreachable))
        (if (i32.eq (local.get $result) (i32.const 1))
          (then (local.set $uIn (local.get $first)) (local.set $vIn (local.get $second)))
          (else (local.set $uIn (local.get $second)) (local.set $vIn (local.get $first))))

        ;; Flow change around the cycle (flows are per node, on its predecessor arc). The entering
        ;; arc's flow waits in $inFlow for its node; the leaving arc's slot (zero, up to rounding
        ;; residue) is overwritten in the tree update.
        (local.set $inFlow (f64.const 0))
        (if (f64.gt (local.get $delta) (f64.const 0))
          (then
            (local.set $inFlow (local.get $delta))
            (local.set $u (local.get $first))
            (block $f1
              (loop $flow1
                (br_if $f1 (i32.eq (local.get $u) (local.get $join)))
                (f64.store (i32.add (global.get $flowP) (i32.shl (local.get $u) (i32.const 3))) (f64.sub (f64.load (i32.add (global.get $flowP) (i32.shl (local.get $u) (i32.const 3)))) (f64.mul (f64.convert_i32_s (i32.load (i32.add (global.get $dirP) (i32.shl (local.get $u) (i32.const 2))))) (local.get $delta))))
                (local.set $u (i32.load (i32.add (global.get $parentP) (i32.shl (local.get $u) (i32.const 2)))))
                (br $flow1)))
            (local.set $u (local.get $second))
            (block $f2
              (loop $flow2
                (br_if $f2 (i32.eq (local.get $u) (local.get $join)))
                (f64.store (i32.add (global.get $flowP) (i32.shl (local.get $u) (i32.const 3))) (f64.add (f64.load (i32.add (global.get $flowP) (i32.shl (local.get $u) (i32.const 3)))) (f64.mul (f64.convert_i32_s (i32.load (i32.add (global.get $dirP) (i32.shl (local.get $u) (i32.const 2))))) (local.get $delta))))
                (local.set $u (i32.load (i32.add (global.get $parentP) (i32.shl (local.get $u) (i32.const 2)))))
                (br $flow2)))))
        (local.set $outArc (i32.load (i32.add (global.get $predP) (i32.shl (local.get $uOut) (i32.const 2)))))
        (i32.store8 (i32.add (global.get $stateP) (local.get $inArc)) (i32.const 1))
        (i32.store8 (i32.add (global.get $stateP) (local.get $outArc)) (i32.const 0))

        ;; Tree update: re-hang the subtree cut off by the leaving arc below the entering arc.
        (local.set $oldRev (i32.load (i32.add (global.get $revP) (i32.shl (local.get $uOut) (i32.const 2)))))
        (local.set $oldSucc (i32.load (i32.add (global.get $succP) (i32.shl (local.get $uOut) (i32.const 2)))))
        (local.set $oldLast (i32.load (i32.add (global.get $lastP) (i32.shl (local.get $uOut) (i32.const 2)))))
        (local.set $vOut (i32.load (i32.add (global.get $parentP) (i32.shl (local.get $uOut) (i32.const 2)))))
        (if (i32.eq (local.get $uIn) (local.get $uOut))
          (then
            (i32.store (i32.add (global.get $parentP) (i32.shl (local.get $uIn) (i32.const 2))) (local.get $vIn))
            (i32.store (i32.add (global.get $predP) (i32.shl (local.get $uIn) (i32.const 2))) (local.get $inArc))
            (i32.store (i32.add (global.get $dirP) (i32.shl (local.get $uIn) (i32.const 2))) (select (i32.const 1) (i32.const -1) (i32.eq (local.get $uIn) (call $source (local.get $inArc)))))
            (f64.store (i32.add (global.get $flowP) (i32.shl (local.get $uIn) (i32.const 3))) (local.get $inFlow))
            (if (i32.ne (i32.load (i32.add (global.get $threadP) (i32.shl (local.get $vIn) (i32.const 2)))) (local.get $uOut))
              (then
                (local.set $after (i32.load (i32.add (global.get $threadP) (i32.shl (local.get $oldLast) (i32.const 2)))))
                (i32.store (i32.add (global.get $threadP) (i32.shl (local.get $oldRev) (i32.const 2))) (local.get $after))
                (i32.store (i32.add (global.get $revP) (i32.shl (local.get $after) (i32.const 2))) (local.get $oldRev))
                (local.set $after (i32.load (i32.add (global.get $threadP) (i32.shl (local.get $vIn) (i32.const 2)))))
                (i32.store (i32.add (global.get $threadP) (i32.shl (local.get $vIn) (i32.const 2))) (local.get $uOut))
                (i32.store (i32.add (global.get $revP) (i32.shl (local.get $uOut) (i32.const 2))) (local.get $vIn))
                (i32.store (i32.add (global.get $threadP) (i32.shl (local.get $oldLast) (i32.const 2))) (local.get $after))
                (i32.store (i32.add (global.get $revP) (i32.shl (local.get $after) (i32.const 2))) (local.get $oldLast)))))
          (else
            (local.set $threadContinue
              (if (result i32) (i32.eq (local.get $oldRev) (local.get $vIn))
                (then (i32.load (i32.add (global.get $threadP) (i32.shl (local.get $oldLast) (i32.const 2)))))
                (else (i32.load (i32.add (global.get $threadP) (i32.shl (local.get $vIn) (i32.const 2)))))))
            (local.set $stem (local.get $uIn))
            (local.set $parStem (local.get $vIn))
            (local.set $last (i32.load (i32.add (global.get $lastP) (i32.shl (local.get $uIn) (i32.const 2)))))
            (local.set $after (i32.load (i32.add (global.get $threadP) (i32.shl (local.get $last) (i32.const 2)))))
            (i32.store (i32.add (global.get $threadP) (i32.shl (local.get $vIn) (i32.const 2))) (local.get $uIn))
            (local.set $dirty (i32.const 0))
            (i32.store (i32.add (global.get $dirtyP) (i32.shl (local.get $dirty) (i32.const 2))) (local.get $vIn))
            (local.set $dirty (i32.add (local.get $dirty) (i32.const 1)))
            (block $stemDone
              (loop $stemLoop
                (br_if $stemDone (i32.eq (local.get $stem) (local.get $uOut)))
                (local.set $nextStem (i32.load (i32.add (global.get $parentP) (i32.shl (local.get $stem) (i32.const 2)))))
                (i32.store (i32.add (global.get $threadP) (i32.shl (local.get $last) (i32.const 2))) (local.get $nextStem))
                (i32.store (i32.add (global.get $dirtyP) (i32.shl (local.get $dirty) (i32.const 2))) (local.get $last))
                (local.set $dirty (i32.add (local.get $dirty) (i32.const 1)))
                (local.set $before (i32.load (i32.add (global.get $revP) (i32.shl (local.get $stem) (i32.const 2)))))
                (i32.store (i32.add (global.get $threadP) (i32.shl (local.get $before) (i32.const 2))) (local.get $after))
                (i32.store (i32.add (global.get $revP) (i32.shl (local.get $after) (i32.const 2))) (local.get $before))
                (i32.store (i32.add (global.get $parentP) (i32.shl (local.get $stem) (i32.const 2))) (local.get $parStem))
                (local.set $parStem (local.get $stem))
                (local.set $stem (local.get $nextStem))
                (local.set $last
                  (if (result i32) (i32.eq (i32.load (i32.add (global.get $lastP) (i32.shl (local.get $stem) (i32.const 2)))) (i32.load (i32.add (global.get $lastP) (i32.shl (local.get $parStem) (i32.const 2)))))
                    (then (i32.load (i32.add (global.get $revP) (i32.shl (local.get $parStem) (i32.const 2)))))
                    (else (i32.load (i32.add (global.get $lastP) (i32.shl (local.get $stem) (i32.const 2)))))))
                (local.set $after (i32.load (i32.add (global.get $threadP) (i32.shl (local.get $last) (i32.const 2)))))
                (br $stemLoop)))
            (i32.store (i32.add (global.get $parentP) (i32.shl (local.get $uOut) (i32.const 2))) (local.get $parStem))
            (i32.store (i32.add (global.get $threadP) (i32.shl (local.get $last) (i32.const 2))) (local.get $threadContinue))
            (i32.store (i32.add (global.get $revP) (i32.shl (local.get $threadContinue) (i32.const 2))) (local.get $last))
            (i32.store (i32.add (global.get $lastP) (i32.shl (local.get $uOut) (i32.const 2))) (local.get $last))
            (if (i32.ne (local.get $oldRev) (local.get $vIn))
              (then
                (i32.store (i32.add (global.get $threadP) (i32.shl (local.get $oldRev) (i32.const 2))) (local.get $after))
                (i32.store (i32.add (global.get $revP) (i32.shl (local.get $after) (i32.const 2))) (local.get $oldRev))))
            (local.set $i (i32.const 0))
            (block $revDone
              (loop $revLoop
                (br_if $revDone (i32.ge_s (local.get $i) (local.get $dirty)))
                (local.set $u (i32.load (i32.add (global.get $dirtyP) (i32.shl (local.get $i) (i32.const 2)))))
                (local.set $x (i32.load (i32.add (global.get $threadP) (i32.shl (local.get $u) (i32.const 2)))))
                (i32.store (i32.add (global.get $revP) (i32.shl (local.get $x) (i32.const 2))) (local.get $u))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $revLoop)))
            (local.set $tmpSc (i32.const 0))
            (local.set $tmpLs (i32.load (i32.add (global.get $lastP) (i32.shl (local.get $uOut) (i32.const 2)))))
            (local.set $u (local.get $uOut))
            (local.set $p (i32.load (i32.add (global.get $parentP) (i32.shl (local.get $u) (i32.const 2)))))
            (block $reverseDone
              (loop $reverse
                (br_if $reverseDone (i32.eq (local.get $u) (local.get $uIn)))
                (i32.store (i32.add (global.get $predP) (i32.shl (local.get $u) (i32.const 2))) (i32.load (i32.add (global.get $predP) (i32.shl (local.get $p) (i32.const 2)))))
                (i32.store (i32.add (global.get $dirP) (i32.shl (local.get $u) (i32.const 2))) (i32.sub (i32.const 0) (i32.load (i32.add (global.get $dirP) (i32.shl (local.get $p) (i32.const 2))))))
                (f64.store (i32.add (global.get $flowP) (i32.shl (local.get $u) (i32.const 3))) (f64.load (i32.add (global.get $flowP) (i32.shl (local.get $p) (i32.const 3)))))
                (local.set $tmpSc (i32.add (local.get $tmpSc) (i32.sub (i32.load (i32.add (global.get $succP) (i32.shl (local.get $u) (i32.const 2)))) (i32.load (i32.add (global.get $succP) (i32.shl (local.get $p) (i32.const 2)))))))
                (i32.store (i32.add (global.get $succP) (i32.shl (local.get $u) (i32.const 2))) (local.get $tmpSc))
                (i32.store (i32.add (global.get $lastP) (i32.shl (local.get $p) (i32.const 2))) (local.get $tmpLs))
                (local.set $u (local.get $p))
                (local.set $p (i32.load (i32.add (global.get $parentP) (i32.shl (local.get $u) (i32.const 2)))))
                (br $reverse)))
            (i32.store (i32.add (global.get $predP) (i32.shl (local.get $uIn) (i32.const 2))) (local.get $inArc))
            (i32.store (i32.add (global.get $dirP) (i32.shl (local.get $uIn) (i32.const 2))) (select (i32.const 1) (i32.const -1) (i32.eq (local.get $uIn) (call $source (local.get $inArc)))))
            (f64.store (i32.add (global.get $flowP) (i32.shl (local.get $uIn) (i32.const 3))) (local.get $inFlow))
            (i32.store (i32.add (global.get $succP) (i32.shl (local.get $uIn) (i32.const 2))) (local.get $oldSucc))))
        (local.set $upLimit
          (select (local.get $join) (i32.const -1) (i32.eq (i32.load (i32.add (global.get $lastP) (i32.shl (local.get $join) (i32.const 2)))) (local.get $vIn))))
        (local.set $lastOut (i32.load (i32.add (global.get $lastP) (i32.shl (local.get $uOut) (i32.const 2)))))
        (local.set $u (local.get $vIn))
        (block $l1
          (loop $last1
            (br_if $l1 (i32.lt_s (local.get $u) (i32.const 0)))
            (br_if $l1 (i32.ne (i32.load (i32.add (global.get $lastP) (i32.shl (local.get $u) (i32.const 2)))) (local.get $vIn)))
            (i32.store (i32.add (global.get $lastP) (i32.shl (local.get $u) (i32.const 2))) (local.get $lastOut))
            (local.set $u (i32.load (i32.add (global.get $parentP) (i32.shl (local.get $u) (i32.const 2)))))
            (br $last1)))
        (if (i32.and (i32.ne (local.get $join) (local.get $oldRev)) (i32.ne (local.get $vIn) (local.get $oldRev)))
          (then (local.set $x (local.get $oldRev)))
          (else (local.set $x (local.get $lastOut))))
        (if (i32.or (i32.and (i32.ne (local.get $join) (local.get $oldRev)) (i32.ne (local.get $vIn) (local.get $oldRev)))
                    (i32.ne (local.get $lastOut) (local.get $oldLast)))
          (then
            (local.set $u (local.get $vOut))
            (block $l2
              (loop $last2
                (br_if $l2 (i32.eq (local.get $u) (local.get $upLimit)))
                (br_if $l2 (i32.lt_s (local.get $u) (i32.const 0)))
                (br_if $l2 (i32.ne (i32.load (i32.add (global.get $lastP) (i32.shl (local.get $u) (i32.const 2)))) (local.get $oldLast)))
                (i32.store (i32.add (global.get $lastP) (i32.shl (local.get $u) (i32.const 2))) (local.get $x))
                (local.set $u (i32.load (i32.add (global.get $parentP) (i32.shl (local.get $u) (i32.const 2)))))
                (br $last2)))))
        (local.set $u (local.get $vIn))
        (block $s1
          (loop $succ1
            (br_if $s1 (i32.eq (local.get $u) (local.get $join)))
            (i32.store (i32.add (global.get $succP) (i32.shl (local.get $u) (i32.const 2))) (i32.add (i32.load (i32.add (global.get $succP) (i32.shl (local.get $u) (i32.const 2)))) (local.get $oldSucc)))
            (local.set $u (i32.load (i32.add (global.get $parentP) (i32.shl (local.get $u) (i32.const 2)))))
            (br $succ1)))
        (local.set $u (local.get $vOut))
        (block $s2
          (loop $succ2
            (br_if $s2 (i32.eq (local.get $u) (local.get $join)))
            (i32.store (i32.add (global.get $succP) (i32.shl (local.get $u) (i32.const 2))) (i32.sub (i32.load (i32.add (global.get $succP) (i32.shl (local.get $u) (i32.const 2)))) (local.get $oldSucc)))
            (local.set $u (i32.load (i32.add (global.get $parentP) (i32.shl (local.get $u) (i32.const 2)))))
            (br $succ2)))

        ;; Potentials: shift the re-hung subtree so the entering arc's reduced cost is zero.
        (local.set $sigma
          (f64.sub (f64.sub (f64.load (i32.add (global.get $piP) (i32.shl (local.get $vIn) (i32.const 3)))) (f64.load (i32.add (global.get $piP) (i32.shl (local.get $uIn) (i32.const 3)))))
                   (f64.mul (f64.convert_i32_s (i32.load (i32.add (global.get $dirP) (i32.shl (local.get $uIn) (i32.const 2))))) (call $arcCost (local.get $inArc)))))
        (local.set $x (i32.load (i32.add (global.get $lastP) (i32.shl (local.get $uIn) (i32.const 2)))))
        (local.set $end (i32.load (i32.add (global.get $threadP) (i32.shl (local.get $x) (i32.const 2)))))
        (local.set $u (local.get $uIn))
        (block $potDone
          (loop $pot
            (br_if $potDone (i32.eq (local.get $u) (local.get $end)))
            (f64.store (i32.add (global.get $piP) (i32.shl (local.get $u) (i32.const 3))) (f64.add (f64.load (i32.add (global.get $piP) (i32.shl (local.get $u) (i32.const 3)))) (local.get $sigma)))
            (local.set $u (i32.load (i32.add (global.get $threadP) (i32.shl (local.get $u) (i32.const 2)))))
            (br $pot)))
        (local.set $pivots (i32.add (local.get $pivots) (i32.const 1)))
        (br $pivot)))
    (local.get $pivots))

  ;; Potentials making every tree arc's reduced cost zero, walking the thread from the root:
  ;; pi[u] = pi[parent u] - dir[u] * cost(pred u).
  (func (export "potentials") (param $art f64)
    (local $u i32) (local $w i32) (local $x i32)
    (global.set $art (local.get $art))
    (f64.store (i32.add (global.get $piP) (i32.shl (global.get $root) (i32.const 3))) (f64.const 0))
    (local.set $w (global.get $root))
    (local.set $u (i32.load (i32.add (global.get $threadP) (i32.shl (local.get $w) (i32.const 2)))))
    (block $done
      (loop $walk
        (br_if $done (i32.eq (local.get $u) (global.get $root)))
        (local.set $w (i32.load (i32.add (global.get $parentP) (i32.shl (local.get $u) (i32.const 2)))))
        (local.set $x (i32.load (i32.add (global.get $predP) (i32.shl (local.get $u) (i32.const 2)))))
        (f64.store (i32.add (global.get $piP) (i32.shl (local.get $u) (i32.const 3)))
          (f64.sub (f64.load (i32.add (global.get $piP) (i32.shl (local.get $w) (i32.const 3))))
                   (f64.mul (f64.convert_i32_s (i32.load (i32.add (global.get $dirP) (i32.shl (local.get $u) (i32.const 2)))))
                            (call $arcCost (local.get $x)))))
        (local.set $u (i32.load (i32.add (global.get $threadP) (i32.shl (local.get $u) (i32.const 2)))))
        (br $walk))))

  ;; hang(cost, n, m, sigma, diag, dist, via, open): the order in which emd.ts hangPermutation
  ;; attaches the pairs {t, sigma(t)} of a permutation basis — a label-setting (Dijkstra/Prim)
  ;; pass over the exchange weights c(s, sigma(t)) - c(t, sigma(t)) from pair 0, O(n^2) — writing
  ;; via[t] (i32, -1 for pair 0): the pair that t hangs below. diag, dist (f64[n]) and open (i32[n])
  ;; are scratch; sigma is i32[n]. The same IEEE operations in the same order as the JS loop, and
  ;; the same first-minimum choice, so the basis is the same.
  (func (export "hang") (param $cost i32) (param $n i32) (param $m i32) (param $sigma i32)
    (param $diag i32) (param $dist i32) (param $via i32) (param $open i32)
    (local $t i32) (local $k i32) (local $s i32) (local $next i32) (local $openCount i32)
    (local $best i32) (local $row i32) (local $ds f64) (local $d f64) (local $bestDist f64)
    (local $pd i32) (local $dt f64)
    (local.set $t (i32.const 0))
    (block $initDone
      (loop $init
        (br_if $initDone (i32.ge_u (local.get $t) (local.get $n)))
        (f64.store (i32.add (local.get $diag) (i32.shl (local.get $t) (i32.const 3)))
          (f64.load (i32.add (local.get $cost) (i32.shl
            (i32.add (i32.mul (local.get $t) (local.get $m))
                     (i32.load (i32.add (local.get $sigma) (i32.shl (local.get $t) (i32.const 2))))) (i32.const 3)))))
        (f64.store (i32.add (local.get $dist) (i32.shl (local.get $t) (i32.const 3))) (f64.const inf))
        (i32.store (i32.add (local.get $via) (i32.shl (local.get $t) (i32.const 2))) (i32.const -1))
        (i32.store (i32.add (local.get $open) (i32.shl (local.get $t) (i32.const 2))) (local.get $t))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $init)))
    (local.set $openCount (local.get $n))
    (local.set $next (i32.const 0))
    (f64.store (local.get $dist) (f64.const 0))
    (block $done
      (loop $attach
        (br_if $done (i32.eqz (local.get $openCount)))
        ;; s = open[next]; open[next] = open[--openCount]
        (local.set $s (i32.load (i32.add (local.get $open) (i32.shl (local.get $next) (i32.const 2)))))
        (local.set $openCount (i32.sub (local.get $openCount) (i32.const 1)))
        (i32.store (i32.add (local.get $open) (i32.shl (local.get $next) (i32.const 2)))
          (i32.load (i32.add (local.get $open) (i32.shl (local.get $openCount) (i32.const 2)))))
        (local.set $ds (f64.load (i32.add (local.get $dist) (i32.shl (local.get $s) (i32.const 3)))))
        (local.set $row (i32.add (local.get $cost) (i32.shl (i32.mul (local.get $s) (local.get $m)) (i32.const 3))))
        (local.set $best (i32.const 0))
        (local.set $bestDist (f64.const inf))
        (local.set $k (i32.const 0))
        (block $scanDone
          (loop $scan
            (br_if $scanDone (i32.ge_u (local.get $k) (local.get $openCount)))
            (local.set $t (i32.load (i32.add (local.get $open) (i32.shl (local.get $k) (i32.const 2)))))
            ;; d = ds + c(s, sigma t) - diag t
            (local.set $d (f64.sub
              (f64.add (local.get $ds)
                (f64.load (i32.add (local.get $row)
                  (i32.shl (i32.load (i32.add (local.get $sigma) (i32.shl (local.get $t) (i32.const 2)))) (i32.const 3)))))
              (f64.load (i32.add (local.get $diag) (i32.shl (local.get $t) (i32.const 3))))))
            (local.set $pd (i32.add (local.get $dist) (i32.shl (local.get $t) (i32.const 3))))
            (local.set $dt (f64.load (local.get $pd)))
            (if (f64.lt (local.get $d) (local.get $dt))
              (then
                (f64.store (local.get $pd) (local.get $d))
                (local.set $dt (local.get $d))
                (i32.store (i32.add (local.get $via) (i32.shl (local.get $t) (i32.const 2))) (local.get $s))))
            (if (f64.lt (local.get $dt) (local.get $bestDist))
              (then
                (local.set $bestDist (local.get $dt))
                (local.set $best (local.get $k))))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $scan)))
        (local.set $next (local.get $best))
        (br $attach))))
)
