/** A failure the user can act on; the message names what is missing. */
export class RealServerError extends Error {
  override readonly name = 'RealServerError';
}
