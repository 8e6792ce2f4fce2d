;; A WASI 0.2 component (world in netprobe.wit) that connects to 127.0.0.1 at each port
;; given as an argument ("PORT" for TCP, "tls:PORT" for TLS through wasi:tls with server
;; name "localhost"), sends "hello from a component\n" on success, and prints one line per
;; argument on stdout: "ARG: ok", "ARG: denied" (wasi:sockets access-denied),
;; "ARG: tls error" (the handshake failed) or "ARG: error N" (N = the wasi:sockets
;; error-code). Exits 0 after trying every argument.
;;
;; Memory: 0..256 return areas of the canonical ABI, 256.. constant strings, 4096.. a
;; bump heap for cabi_realloc.
(module
  (import "wasi:cli/environment@0.2.0" "get-arguments" (func $get_arguments (param i32)))
  (import "wasi:cli/stdout@0.2.0" "get-stdout" (func $get_stdout (result i32)))
  (import "wasi:io/streams@0.2.0" "[method]output-stream.blocking-write-and-flush"
    (func $write_and_flush (param i32 i32 i32 i32)))
  (import "wasi:io/poll@0.2.0" "[method]pollable.block" (func $block (param i32)))
  (import "wasi:io/poll@0.2.0" "[resource-drop]pollable" (func $drop_pollable (param i32)))
  (import "wasi:sockets/instance-network@0.2.0" "instance-network"
    (func $instance_network (result i32)))
  (import "wasi:sockets/tcp-create-socket@0.2.0" "create-tcp-socket"
    (func $create_tcp_socket (param i32 i32)))
  ;; self, network, then ip-socket-address flattened: discriminant + 11 payload slots
  ;; (the ipv6 case is the widest), then the return area.
  (import "wasi:sockets/tcp@0.2.0" "[method]tcp-socket.start-connect"
    (func $start_connect (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "wasi:sockets/tcp@0.2.0" "[method]tcp-socket.finish-connect"
    (func $finish_connect (param i32 i32)))
  (import "wasi:sockets/tcp@0.2.0" "[method]tcp-socket.subscribe"
    (func $subscribe (param i32) (result i32)))
  (import "wasi:tls/types@0.2.0-draft" "[constructor]client-handshake"
    (func $client_handshake (param i32 i32 i32 i32) (result i32)))
  (import "wasi:tls/types@0.2.0-draft" "[static]client-handshake.finish"
    (func $finish_handshake (param i32) (result i32)))
  (import "wasi:tls/types@0.2.0-draft" "[method]future-client-streams.subscribe"
    (func $subscribe_streams (param i32) (result i32)))
  (import "wasi:tls/types@0.2.0-draft" "[method]future-client-streams.get"
    (func $get_streams (param i32 i32)))

  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  ;; The streams of the last connection (TLS streams after a handshake).
  (global $input (mut i32) (i32.const 0))
  (global $output (mut i32) (i32.const 0))

  (data (i32.const 256) "hello from a component\n")  ;; 23 bytes
  (data (i32.const 288) ": ok\n")                    ;; 5
  (data (i32.const 296) ": denied\n")                ;; 9
  (data (i32.const 312) ": error ")                  ;; 8
  (data (i32.const 320) "\n")
  (data (i32.const 336) "localhost")                 ;; 9
  (data (i32.const 352) ": tls error\n")             ;; 12

  (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32)
      (param $new_size i32) (result i32)
    (local $ptr i32)
    ;; Round the heap up to the alignment, hand out the block, grow memory as needed.
    (local.set $ptr (i32.and
      (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
      (i32.sub (i32.const 0) (local.get $align))))
    (global.set $heap (i32.add (local.get $ptr) (local.get $new_size)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.shr_u (local.get $new_size) (i32.const 16))
                                        (i32.const 1))))))
    (if (local.get $old_size)
      (then (memory.copy (local.get $ptr) (local.get $old) (local.get $old_size))))
    (local.get $ptr))

  (func $write (param $stream i32) (param $ptr i32) (param $len i32)
    (call $write_and_flush (local.get $stream) (local.get $ptr) (local.get $len) (i32.const 0)))

  ;; Waits until $pollable is ready, then drops it.
  (func $wait (param $pollable i32)
    (call $block (local.get $pollable))
    (call $drop_pollable (local.get $pollable)))

  ;; Decimal text to a number (no validation: the test passes ports).
  (func $parse (param $ptr i32) (param $len i32) (result i32)
    (local $n i32)
    (block $done
      (loop $digits
        (br_if $done (i32.eqz (local.get $len)))
        (local.set $n (i32.add (i32.mul (local.get $n) (i32.const 10))
                               (i32.sub (i32.load8_u (local.get $ptr)) (i32.const 48))))
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 1)))
        (local.set $len (i32.sub (local.get $len) (i32.const 1)))
        (br $digits)))
    (local.get $n))

  ;; Connects to 127.0.0.1:$port and keeps its streams in $input/$output: -1 on success,
  ;; else the wasi:sockets error-code.
  (func $connect (param $network i32) (param $port i32) (result i32)
    (local $socket i32)
    ;; create-tcp-socket(ipv4) -> result<tcp-socket, error-code> at 32
    (call $create_tcp_socket (i32.const 0) (i32.const 32))
    (if (i32.load8_u (i32.const 32)) (then (return (i32.load8_u (i32.const 36)))))
    (local.set $socket (i32.load (i32.const 36)))
    ;; start-connect(network, ipv4 { port, 127.0.0.1 }) -> result<_, error-code> at 48
    (call $start_connect (local.get $socket) (local.get $network)
      (i32.const 0) (local.get $port)
      (i32.const 127) (i32.const 0) (i32.const 0) (i32.const 1)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
      (i32.const 48))
    (if (i32.load8_u (i32.const 48)) (then (return (i32.load8_u (i32.const 49)))))
    (loop $again
      ;; finish-connect() -> result<tuple<input-stream, output-stream>, error-code> at 64
      (call $finish_connect (local.get $socket) (i32.const 64))
      (if (i32.eqz (i32.load8_u (i32.const 64)))
        (then
          (global.set $input (i32.load (i32.const 68)))
          (global.set $output (i32.load (i32.const 72)))
          (return (i32.const -1))))
      ;; would-block: wait for the socket, then ask again.
      (if (i32.eq (i32.load8_u (i32.const 68)) (i32.const 8))
        (then
          (call $wait (call $subscribe (local.get $socket)))
          (br $again))))
    (i32.load8_u (i32.const 68)))

  ;; TLS over $input/$output with server name "localhost"; on success they become the TLS
  ;; streams. Returns whether the handshake succeeded.
  (func $handshake (result i32)
    (local $future i32)
    (local.set $future (call $finish_handshake
      (call $client_handshake (i32.const 336) (i32.const 9)
        (global.get $input) (global.get $output))))
    ;; get() -> option<result<result<tuple<connection, input, output>, io-error>>> at 96:
    ;; option tag 96, outer result tag 100, inner result tag 104, tuple at 108/112/116.
    (loop $again
      (call $get_streams (local.get $future) (i32.const 96))
      (if (i32.eqz (i32.load8_u (i32.const 96)))
        (then
          (call $wait (call $subscribe_streams (local.get $future)))
          (br $again))))
    (if (i32.or (i32.load8_u (i32.const 100)) (i32.load8_u (i32.const 104)))
      (then (return (i32.const 0))))
    (global.set $input (i32.load (i32.const 112)))
    (global.set $output (i32.load (i32.const 116)))
    (i32.const 1))

  (func (export "wasi:cli/run@0.2.0#run") (result i32)
    (local $stdout i32) (local $network i32) (local $args i32) (local $count i32)
    (local $i i32) (local $ptr i32) (local $len i32) (local $tls i32) (local $code i32)
    (call $get_arguments (i32.const 16))
    (local.set $args (i32.load (i32.const 16)))
    (local.set $count (i32.load (i32.const 20)))
    (local.set $stdout (call $get_stdout))
    (local.set $network (call $instance_network))
    ;; Argument 0 is the program name.
    (local.set $i (i32.const 1))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (local.set $ptr (i32.load (i32.add (local.get $args)
                                           (i32.shl (local.get $i) (i32.const 3)))))
        (local.set $len (i32.load offset=4 (i32.add (local.get $args)
                                                    (i32.shl (local.get $i) (i32.const 3)))))
        (call $write (local.get $stdout) (local.get $ptr) (local.get $len))
        ;; "tls:PORT" (starts with 't') asks for TLS.
        (local.set $tls (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 116)))
        (if (local.get $tls)
          (then
            (local.set $ptr (i32.add (local.get $ptr) (i32.const 4)))
            (local.set $len (i32.sub (local.get $len) (i32.const 4)))))
        (local.set $code (call $connect (local.get $network)
                                        (call $parse (local.get $ptr) (local.get $len))))
        (if (i32.and (i32.eq (local.get $code) (i32.const -1)) (local.get $tls))
          (then (if (i32.eqz (call $handshake)) (then (local.set $code (i32.const -2))))))
        (if (i32.eq (local.get $code) (i32.const -1))
          (then
            (call $write (global.get $output) (i32.const 256) (i32.const 23))
            (call $write (local.get $stdout) (i32.const 288) (i32.const 5)))
          (else (if (i32.eq (local.get $code) (i32.const 1))
            (then (call $write (local.get $stdout) (i32.const 296) (i32.const 9)))
            (else (if (i32.eq (local.get $code) (i32.const -2))
              (then (call $write (local.get $stdout) (i32.const 352) (i32.const 12)))
              (else
                (call $write (local.get $stdout) (i32.const 312) (i32.const 8))
                ;; error codes are below 100: one or two digits
                (if (i32.ge_u (local.get $code) (i32.const 10))
                  (then
                    (i32.store8 (i32.const 330) (i32.add (i32.const 48)
                      (i32.div_u (local.get $code) (i32.const 10))))
                    (call $write (local.get $stdout) (i32.const 330) (i32.const 1))))
                (i32.store8 (i32.const 330) (i32.add (i32.const 48)
                  (i32.rem_u (local.get $code) (i32.const 10))))
                (call $write (local.get $stdout) (i32.const 330) (i32.const 1))
                (call $write (local.get $stdout) (i32.const 320) (i32.const 1))))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $each)))
    (i32.const 0))
)
