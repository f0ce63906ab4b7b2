;; A wasi:http handler whose two core modules each have a linear memory of
;; their own. Each call grows both by 8 MiB, then returns without a response.
;; Under `memory_mb = 16` neither memory alone crosses the cap, both together
;; do: the host must count them together and answer `memory_limit_exceeded`.
(component
  (import "wasi:http/types@0.2.0" (instance $types
    (export "incoming-request" (type (sub resource)))
    (export "response-outparam" (type (sub resource)))
  ))
  (alias export $types "incoming-request" (type $incoming-request))
  (alias export $types "response-outparam" (type $response-outparam))

  (core module $first
    (memory (export "memory") 1)
    (func (export "grow") (result i32)
      (memory.grow (i32.const 128))))
  (core module $second
    (import "first" "grow" (func $grow-first (result i32)))
    (memory (export "memory") 1)
    (func (export "handle") (param i32 i32)
      (if (i32.lt_s (call $grow-first) (i32.const 0)) (then unreachable))
      (if (i32.lt_s (memory.grow (i32.const 128)) (i32.const 0)) (then unreachable))))
  (core instance $first (instantiate $first))
  (core instance $second (instantiate $second (with "first" (instance $first))))

  (func $handle
    (param "request" (own $incoming-request))
    (param "response-out" (own $response-outparam))
    (canon lift (core func $second "handle")))
  (instance $handler (export "handle" (func $handle)))
  (export "wasi:http/incoming-handler@0.2.0" (instance $handler))
)
