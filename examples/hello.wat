;; The smallest WASI program: writes a greeting to stdout through WASI preview 1.
;; Run it with:  keep run examples/hello.wat
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; An iovec at offset 0 pointing at the text at offset 16.
  (data (i32.const 0) "\10\00\00\00\1a\00\00\00")
  (data (i32.const 16) "Hello from a Keep (WASI)!\0a")
  (func (export "_start")
    (drop (call $fd_write
      (i32.const 1)    ;; stdout
      (i32.const 0)    ;; iovecs
      (i32.const 1)    ;; one iovec
      (i32.const 8)))));; where to store the number of bytes written
