;; Imports a function no WASI host provides.
(module
  (import "env" "host_magic" (func $magic (param i32) (result i32)))
  (func (export "_start") (drop (call $magic (i32.const 1))))
  (memory (export "memory") 1))
