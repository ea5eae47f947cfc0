/**
 * The errors of the HTTP layer itself (`roundlog serve`): requests the engine never sees because
 * they are refused at the door (no token, bad JSON, a body too large, a route that does not exist),
 * and the request-level rules of the service (a request id reused with other content, a round
 * recorded out of turn). Each has a literal `code` and the fields its JSON body carries.
 */
import { RoundlogError, shownText } from '../errors.ts';

/** No bearer token, or not the server's (`Authorization: Bearer <token>`). HTTP 401. */
export class UnauthorizedError extends RoundlogError {
  readonly code = 'UNAUTHORIZED' as const;
  constructor(readonly reason: 'missing' | 'invalid') {
    super(
      reason === 'missing'
        ? 'this server needs a bearer token: send the header Authorization: Bearer <token> ' +
            "(the server's token, from its operator)"
        : "the bearer token is not this server's: send the token its operator gave (Authorization: Bearer <token>)",
    );
  }
}

/** `roundlog serve` asked to listen on a host other than loopback without a token: refused, nothing listens. */
export class TokenRequiredError extends RoundlogError {
  readonly code = 'TOKEN_REQUIRED' as const;
  constructor(readonly host: string) {
    super(
      `refusing to listen on ${shownText(host)} without a token: anyone who reaches that address could write ` +
        'to the root; give --token-file FILE (a file holding the bearer token clients send), or listen on 127.0.0.1',
    );
  }
}

/** The token file is missing, unreadable, or holds no usable token. */
export class InvalidTokenFileError extends RoundlogError {
  readonly code = 'INVALID_TOKEN_FILE' as const;
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`the token file ${file} ${problem}; write a token of 16 to 4096 printable characters on one line`);
  }
}

/** A request that does not match its route's schema: `field` is the path of the first problem. HTTP 400. */
export class InvalidRequestError extends RoundlogError {
  readonly code = 'INVALID_REQUEST' as const;
  constructor(
    /** Where: `body.round`, `params.round`, `querystring.format`, `headers.if-match`. */
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field} ${problem}`);
  }
}

/** A JSON body that does not parse. HTTP 400. */
export class InvalidJsonError extends RoundlogError {
  readonly code = 'INVALID_JSON' as const;
  constructor(readonly reason: string) {
    super(`the request body is not valid JSON (${reason}); send a JSON object with Content-Type: application/json`);
  }
}

/** No route answers to the method and path. HTTP 404. */
export class RouteNotFoundError extends RoundlogError {
  readonly code = 'NOT_FOUND' as const;
  /** The route that does what the path looks like it asks, when there is one. */
  readonly hint: string | null;
  constructor(
    readonly method: string,
    readonly path: string,
  ) {
    const hint = routeHint(path);
    super(
      `no route ${method} ${shownText(path, 200)}: the API has no such path (this says nothing of the ` +
        `experiment or round it names); ${hint === null ? '' : `${hint}; `}the routes are listed in GET /openapi.json`,
    );
    this.hint = hint;
  }
}

/**
 * A round's operations are routes of the experiment, the round in the body (or the query):
 * `rounds/0/fork` is `fork` with `round: 0`.
 */
function routeHint(path: string): string | null {
  const match = /^\/v1\/experiments\/([^/]+)\/rounds\/([^/]+)\/(fork|rewind|replay|export)\/?$/.exec(path);
  if (match === null) return null;
  const [, experiment, round, operation] = match;
  const target = `/v1/experiments/${experiment}/${operation}`;
  const roundValue = /^\d+$/.test(round!) ? round! : JSON.stringify(round);
  return operation === 'export'
    ? `to export a round, GET ${target}?round=${round}`
    : `to ${operation} at a round, POST ${target} with the round in the body: {"round": ${roundValue}}`;
}

/**
 * A request body over the server's limit: `json` for JSON bodies (the operator's `--body-limit`),
 * `params` for parameter uploads (`--max-params-bytes`). HTTP 413.
 */
export class BodyTooLargeError extends RoundlogError {
  readonly code = 'BODY_TOO_LARGE' as const;
  constructor(
    readonly limitBytes: number,
    /** Which limit: JSON bodies, or parameter uploads (`POST /v1/params`). */
    readonly limit: 'json' | 'params',
  ) {
    super(
      `the request body is larger than this server's limit of ${limitBytes} bytes for ` +
        `${limit === 'json' ? 'a JSON body' : 'a parameters upload'}; nothing was stored` +
        (limit === 'json' ? '' : ": send smaller parameters, or ask the server's operator to raise its limit"),
    );
  }
}

/** A body of a media type the route does not take. HTTP 415. */
export class UnsupportedMediaTypeError extends RoundlogError {
  readonly code = 'UNSUPPORTED_MEDIA_TYPE' as const;
  constructor(
    readonly contentType: string | null,
    readonly accepted: readonly string[],
  ) {
    const given = contentType === null ? 'a body without Content-Type' : shownText(contentType);
    super(`this route takes ${accepted.join(' or ')}, not ${given}`);
  }
}

/** A request id already used for a request with other content. HTTP 409. */
export class IdempotencyKeyReusedError extends RoundlogError {
  readonly code = 'IDEMPOTENCY_KEY_REUSED' as const;
  constructor(
    readonly experiment: string,
    readonly requestId: string,
  ) {
    super(
      `request id ${shownText(requestId)} was already used for another request of experiment ${experiment}; ` +
        'a retry must send the same content; a new request needs a new request id',
    );
  }
}

/**
 * `Last-Event-ID` (or `lastEventId`) names a log position after the log's last event: the client's
 * position is not one of this log's (another root, a log restored from an older backup). Resuming
 * from it would wait, silently, for events that may never come, and then skip real ones. HTTP 409.
 */
export class EventIdAheadError extends RoundlogError {
  readonly code = 'EVENT_ID_AHEAD' as const;
  constructor(
    /** The id the client sent: a log position. */
    readonly lastEventId: bigint,
    /** The position of the log's last event; null when the log has none. */
    readonly lastPosition: bigint | null,
  ) {
    super(
      `Last-Event-ID ${lastEventId} is past the end of this server's log, whose last event is at position ` +
        `${lastPosition ?? '(none: the log is empty)'}: it is not an id this log gave (another root, or a log ` +
        'restored from an older copy); follow again without Last-Event-ID (from the start), or from an id ' +
        'it sent, and check that the server serves the root you followed before',
    );
  }
}

/** Recording round `round` while the experiment's next round is another. HTTP 409. */
export class RoundMismatchError extends RoundlogError {
  readonly code = 'ROUND_MISMATCH' as const;
  constructor(
    readonly experiment: string,
    readonly round: number,
    /** Rounds completed on the current branch: the index of the round that may be recorded next. */
    readonly roundCurrent: number,
  ) {
    super(
      `experiment ${experiment} records round ${roundCurrent} next, not round ${round}; ` +
        'load the experiment again (GET the experiment) and continue from its last round',
    );
  }
}

/** A path parameter longer than the router takes (`MAX_PATH_PARAM_LENGTH` characters, percent-encoded ×3). HTTP 414. */
export class PathParamTooLongError extends RoundlogError {
  readonly code = 'PATH_PARAM_TOO_LONG' as const;
  constructor(
    readonly path: string,
    readonly maxLength: number,
  ) {
    super(
      `a path parameter of ${shownText(path, 80)} is longer than ${maxLength} characters (percent-encoded); ` +
        'experiment folders, ids and metric names are far shorter: check the URL',
    );
  }
}

/** A URL whose percent-encoding does not decode (`%zz`). HTTP 400. */
export class InvalidUrlError extends RoundlogError {
  readonly code = 'INVALID_URL' as const;
  constructor(readonly path: string) {
    super(`the URL ${shownText(path, 200)} does not decode: percent-encode each path parameter (%XX, UTF-8)`);
  }
}

/**
 * A request Node's HTTP parser refuses before any route sees it: headers over Node's limit (431),
 * a malformed request line, header or Content-Length (400), a request too slow to arrive (408).
 */
export class BadHttpRequestError extends RoundlogError {
  readonly code: 'HEADERS_TOO_LARGE' | 'BAD_HTTP_REQUEST' | 'REQUEST_TIMEOUT';
  constructor(readonly reason: string) {
    const code =
      reason === 'HPE_HEADER_OVERFLOW'
        ? 'HEADERS_TOO_LARGE'
        : reason === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? 'REQUEST_TIMEOUT'
          : 'BAD_HTTP_REQUEST';
    super(
      code === 'HEADERS_TOO_LARGE'
        ? "the request's headers are larger than this server takes (16 KiB in all); send shorter headers"
        : code === 'REQUEST_TIMEOUT'
          ? 'the request did not arrive in time; send it again'
          : `the request is not valid HTTP/1.1 (${reason}): check its request line, headers and Content-Length`,
    );
    this.code = code;
  }
}

/**
 * A request to a server listening on loopback whose `Host` is not a loopback name: a web page
 * reaching it through a DNS name rebound to 127.0.0.1 (DNS rebinding). HTTP 421.
 */
export class HostNotAllowedError extends RoundlogError {
  readonly code = 'HOST_NOT_ALLOWED' as const;
  constructor(readonly host: string | null) {
    super(
      `this server listens on loopback and answers only requests addressed to it by a loopback name ` +
        `(localhost, 127.x.x.x, [::1]), not ${host === null ? 'a request without Host' : `Host ${shownText(host)}`}; ` +
        'address it as localhost or 127.0.0.1 ' +
        "(serving other names is the operator's choice: another address, with a token)",
    );
  }
}

/** `roundlog serve` could not listen: the address is taken, not this machine's, or needs privileges. */
export class ListenFailedError extends RoundlogError {
  readonly code = 'LISTEN_FAILED' as const;
  constructor(
    readonly host: string,
    readonly port: number,
    readonly reason: 'EADDRINUSE' | 'EADDRNOTAVAIL' | 'EACCES',
  ) {
    const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    super(
      reason === 'EADDRINUSE'
        ? `cannot listen on ${where}: another process listens there already (EADDRINUSE); stop it, or give ` +
            'another --port (--port 0: one the system chooses, printed)'
        : reason === 'EADDRNOTAVAIL'
          ? `cannot listen on ${where}: ${host} is not an address of this machine (EADDRNOTAVAIL); check --host`
          : `cannot listen on ${where}: not allowed (EACCES; ports below 1024 need privileges); give another --port`,
    );
  }
}
