/**
 * The control socket's wire contract, shared by server and client: a unix
 * stream socket carrying newline-delimited JSON, one ControlRequest per line
 * in, one ControlResponse per line out, in order.
 */

export const DEFAULT_CONTROL_SOCKET = '/run/fullnat.sock';
/** Longest request line accepted (bytes, without the newline). */
export const MAX_REQUEST_LINE = 64 * 1024;
/** Longest response line the client accepts: a connection listing can be large. */
export const MAX_RESPONSE_LINE = 512 * 1024 * 1024;
