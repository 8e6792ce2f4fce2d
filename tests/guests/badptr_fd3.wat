;; Descriptor 3 (a `[[files]]` stream Keep serves itself) gets the same bad iovec.
;; Hands `fd_write` an iovec array that lies past the end of its one-page memory: a guest
;; fault, which WASI preview 1 says traps (it is not an errno).
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $write_past_the_end
    (drop (call $fd_write (i32.const 3) (i32.const 65532) (i32.const 1) (i32.const 0))))
  (func (export "_start")
    (call $write_past_the_end)))
