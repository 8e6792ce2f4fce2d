;; A table growth bomb: grows its table by 100,000 elements at a time, forever.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (table $t 0 funcref)
  (func (export "_start")
    (loop $grow
      (if (i32.eq (table.grow $t (ref.null func) (i32.const 100000)) (i32.const -1))
        (then (call $exit (i32.const 3))))
      (br $grow))))
