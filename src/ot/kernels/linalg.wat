;; WebAssembly SIMD kernels for src/ot/linalg.ts, compiled by `npm run gen:wasm` (wabt) into
;; linalg.wasm.ts beside this file; a test checks that the committed bytes match this source.
;; Everything is f64; pointers are byte offsets into the memory the host passes in as env.memory.

(module
  (import "env" "memory" (memory 1))

  ;; matmul(a, b, c, n4, k, m4): C (n4×m4) = A (n4×k) · B, with n4 and m4 multiples of 4.
  ;; B is packed in panels of 4 columns: packed[(panel·k + p)·4 + col] = B[p, 4·panel + col].
  ;; For each 4 rows of A and each panel, the 4×4 block of C lives in eight f64x2 registers
  ;; ($accR0 = columns 0–1 of row R, $accR1 = columns 2–3) while p runs over 0…k−1: two 16-byte
  ;; loads of B, and per row one scalar load of A splatted to both lanes. Each entry of C is
  ;; accumulated as Σ_p A_ip B_pj in increasing p with separate multiply and add (no fused
  ;; multiply-add), the order of linalg.ts's JS kernel, so the two give bit-identical results.
  (func (export "matmul")
    (param $a i32) (param $b i32) (param $c i32) (param $n4 i32) (param $k i32) (param $m4 i32)
    (local $i i32)            ;; first of the 4 rows of A (and C) being computed
    (local $panel i32)        ;; panel of 4 columns of B (and C)
    (local $a_offset i32)     ;; byte offset of column p within a row of A
    (local $b_ptr i32)        ;; address of B's packed row p within the panel
    (local $c_ptr i32)        ;; address of the C row being stored
    (local $panels i32)       ;; m4 / 4
    (local $row_bytes i32)    ;; bytes in a row of A (k·8)
    (local $c_row_bytes i32)  ;; bytes in a row of C (m4·8)
    (local $a_row0 i32) (local $a_row1 i32) (local $a_row2 i32) (local $a_row3 i32)
    (local $acc00 v128) (local $acc01 v128)
    (local $acc10 v128) (local $acc11 v128)
    (local $acc20 v128) (local $acc21 v128)
    (local $acc30 v128) (local $acc31 v128)
    (local $b01 v128)         ;; B[p, 4·panel + 0…1]
    (local $b23 v128)         ;; B[p, 4·panel + 2…3]
    (local $a_splat v128)     ;; A[i + R, p] in both lanes

    (local.set $panels (i32.shr_u (local.get $m4) (i32.const 2)))
    (local.set $row_bytes (i32.shl (local.get $k) (i32.const 3)))
    (local.set $c_row_bytes (i32.shl (local.get $m4) (i32.const 3)))

    (local.set $i (i32.const 0))
    (block $rows_done
      (loop $rows
        (br_if $rows_done (i32.ge_u (local.get $i) (local.get $n4)))
        (local.set $a_row0 (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $row_bytes))))
        (local.set $a_row1 (i32.add (local.get $a_row0) (local.get $row_bytes)))
        (local.set $a_row2 (i32.add (local.get $a_row1) (local.get $row_bytes)))
        (local.set $a_row3 (i32.add (local.get $a_row2) (local.get $row_bytes)))

        (local.set $panel (i32.const 0))
        (block $panels_done
          (loop $panels_loop
            (br_if $panels_done (i32.ge_u (local.get $panel) (local.get $panels)))
            (local.set $acc00 (v128.const i64x2 0 0))
            (local.set $acc01 (v128.const i64x2 0 0))
            (local.set $acc10 (v128.const i64x2 0 0))
            (local.set $acc11 (v128.const i64x2 0 0))
            (local.set $acc20 (v128.const i64x2 0 0))
            (local.set $acc21 (v128.const i64x2 0 0))
            (local.set $acc30 (v128.const i64x2 0 0))
            (local.set $acc31 (v128.const i64x2 0 0))
            ;; b_ptr = b + panel·k·32 (a packed panel row is 4 f64 = 32 bytes)
            (local.set $b_ptr
              (i32.add (local.get $b) (i32.shl (i32.mul (local.get $panel) (local.get $k)) (i32.const 5))))

            (local.set $a_offset (i32.const 0))
            (block $p_done
              (loop $p_loop
                (br_if $p_done (i32.ge_u (local.get $a_offset) (local.get $row_bytes)))
                (local.set $b01 (v128.load align=8 (local.get $b_ptr)))
                (local.set $b23 (v128.load offset=16 align=8 (local.get $b_ptr)))

                (local.set $a_splat (f64x2.splat (f64.load (i32.add (local.get $a_row0) (local.get $a_offset)))))
                (local.set $acc00 (f64x2.add (local.get $acc00) (f64x2.mul (local.get $a_splat) (local.get $b01))))
                (local.set $acc01 (f64x2.add (local.get $acc01) (f64x2.mul (local.get $a_splat) (local.get $b23))))

                (local.set $a_splat (f64x2.splat (f64.load (i32.add (local.get $a_row1) (local.get $a_offset)))))
                (local.set $acc10 (f64x2.add (local.get $acc10) (f64x2.mul (local.get $a_splat) (local.get $b01))))
                (local.set $acc11 (f64x2.add (local.get $acc11) (f64x2.mul (local.get $a_splat) (local.get $b23))))

                (local.set $a_splat (f64x2.splat (f64.load (i32.add (local.get $a_row2) (local.get $a_offset)))))
                (local.set $acc20 (f64x2.add (local.get $acc20) (f64x2.mul (local.get $a_splat) (local.get $b01))))
                (local.set $acc21 (f64x2.add (local.get $acc21) (f64x2.mul (local.get $a_splat) (local.get $b23))))

                (local.set $a_splat (f64x2.splat (f64.load (i32.add (local.get $a_row3) (local.get $a_offset)))))
                (local.set $acc30 (f64x2.add (local.get $acc30) (f64x2.mul (local.get $a_splat) (local.get $b01))))
                (local.set $acc31 (f64x2.add (local.get $acc31) (f64x2.mul (local.get $a_splat) (local.get $b23))))

                (local.set $b_ptr (i32.add (local.get $b_ptr) (i32.const 32)))
                (local.set $a_offset (i32.add (local.get $a_offset) (i32.const 8)))
                (br $p_loop)))

            ;; c_ptr = c + (i·m4 + 4·panel)·8, then one row of the 4×4 block per step.
            (local.set $c_ptr
              (i32.add
                (i32.add (local.get $c) (i32.mul (local.get $i) (local.get $c_row_bytes)))
                (i32.shl (local.get $panel) (i32.const 5))))
            (v128.store align=8 (local.get $c_ptr) (local.get $acc00))
            (v128.store offset=16 align=8 (local.get $c_ptr) (local.get $acc01))
            (local.set $c_ptr (i32.add (local.get $c_ptr) (local.get $c_row_bytes)))
            (v128.store align=8 (local.get $c_ptr) (local.get $acc10))
            (v128.store offset=16 align=8 (local.get $c_ptr) (local.get $acc11))
            (local.set $c_ptr (i32.add (local.get $c_ptr) (local.get $c_row_bytes)))
            (v128.store align=8 (local.get $c_ptr) (local.get $acc20))
            (v128.store offset=16 align=8 (local.get $c_ptr) (local.get $acc21))
            (local.set $c_ptr (i32.add (local.get $c_ptr) (local.get $c_row_bytes)))
            (v128.store align=8 (local.get $c_ptr) (local.get $acc30))
            (v128.store offset=16 align=8 (local.get $c_ptr) (local.get $acc31))
            (local.set $c_ptr (i32.add (local.get $c_ptr) (local.get $c_row_bytes)))

            (local.set $panel (i32.add (local.get $panel) (i32.const 1)))
            (br $panels_loop)))

        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $rows)))))
