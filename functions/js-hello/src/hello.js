// A `wasi:http/proxy` function in JavaScript: answers every request with a
// greeting and echoes the request path in `x-path`.
//
// It exports `wasi:http/incoming-handler` itself (the `incomingHandler`
// object) instead of using componentize-js's built-in `fetch` event: that
// built-in is tied to the wasi:http version baked into the engine (0.2.10 in
// componentize-js 0.23.0), while an explicit export follows the WIT in
// ../wit, which is what Flint's host implements (0.2.12). An explicit
// handler also keeps no per-request state in the instance, so a function
// that opts in to instance reuse (`max_requests_per_instance` > 1) works.

import {
  Fields,
  OutgoingBody,
  OutgoingResponse,
  ResponseOutparam,
} from 'wasi:http/types@0.2.12';

const encoder = new TextEncoder();
const GREETING = encoder.encode('Hello from JavaScript!\n');
const CONTENT_TYPE = encoder.encode('text/plain; charset=utf-8');

export const incomingHandler = {
  handle(request, responseOut) {
    const headers = Fields.fromList([
      ['content-type', CONTENT_TYPE],
      ['x-path', encoder.encode(request.pathWithQuery() ?? '/')],
    ]);
    const response = new OutgoingResponse(headers);
    response.setStatusCode(200);
    const body = response.body();
    // Hand the response head to the host first, so it can start sending.
    ResponseOutparam.set(responseOut, { tag: 'ok', val: response });
    const stream = body.write();
    stream.blockingWriteAndFlush(GREETING);
    // The stream is a child of the body: drop it before finishing the body.
    stream[Symbol.dispose]();
    OutgoingBody.finish(body, undefined);
  },
};
