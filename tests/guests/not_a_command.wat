;; A component of another world: it exports an interface-less function, not wasi:cli/run.
(component
  (core module $m (func (export "f") (result i32) i32.const 7))
  (core instance $i (instantiate $m))
  (func (export "answer") (result u32) (canon lift (core func $i "f"))))
