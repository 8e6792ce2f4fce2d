;; A WASI 0.3 command (world hello-p3 in hello_p3.wit): writes a line to stdout through a
;; stream (again after a partial write, until the host drops the stream), waits for the
;; host's answer, and returns ok. Its `stream.write` is the synchronous form, so running it
;; needs the component model's "more async builtins" besides its async features.
(module
  (import "wasi:cli/stdout@0.3.0" "[stream-new-0]write-via-stream" (func $stream_new (result i64)))
  (import "wasi:cli/stdout@0.3.0" "write-via-stream" (func $write_via_stream (param i32) (result i32)))
  (import "wasi:cli/stdout@0.3.0" "[stream-write-0]write-via-stream" (func $stream_write (param i32 i32 i32) (result i32)))
  (import "wasi:cli/stdout@0.3.0" "[stream-drop-writable-0]write-via-stream" (func $stream_drop_writable (param i32)))
  (import "wasi:cli/stdout@0.3.0" "[future-read-1]write-via-stream" (func $future_read (param i32 i32) (result i32)))
  (import "wasi:cli/stdout@0.3.0" "[future-drop-readable-1]write-via-stream" (func $future_drop_readable (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "Hello from WASI 0.3!\n")
  (func (export "wasi:cli/run@0.3.0#run") (result i32)
    (local $ends i64) (local $readable i32) (local $writable i32) (local $done i32)
    (local $at i32) (local $left i32) (local $written i32)
    ;; stream.new: the readable end in the low half, the writable end in the high half.
    (local.set $ends (call $stream_new))
    (local.set $readable (i32.wrap_i64 (local.get $ends)))
    (local.set $writable (i32.wrap_i64 (i64.shr_u (local.get $ends) (i64.const 32))))
    (local.set $done (call $write_via_stream (local.get $readable)))
    (local.set $at (i32.const 64))
    (local.set $left (i32.const 21))
    (block $end
      (loop $more
        ;; The result: the count written, shifted by 4, over the status (0: completed).
        (local.set $written
          (call $stream_write (local.get $writable) (local.get $at) (local.get $left)))
        (local.set $at (i32.add (local.get $at) (i32.shr_u (local.get $written) (i32.const 4))))
        (local.set $left (i32.sub (local.get $left) (i32.shr_u (local.get $written) (i32.const 4))))
        (br_if $end (i32.and (local.get $written) (i32.const 15)))
        (br_if $more (local.get $left))))
    (call $stream_drop_writable (local.get $writable))
    (drop (call $future_read (local.get $done) (i32.const 0)))
    (call $future_drop_readable (local.get $done))
    (i32.const 0))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
)
