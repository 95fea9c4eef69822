/** Figures over rounds, as every bench reports them: the median and the range it came from. */

/** A figure over rounds: the median and the range it came from. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  /** Rounds that gave a figure (a failed measurement gives none). */
  n: number;
}

/** The median of finite values (mean of the middle two for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  const xs = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (xs.length === 0) return NaN;
  const mid = xs.length >> 1;
  return xs.length % 2 === 1 ? xs[mid]! : (xs[mid - 1]! + xs[mid]!) / 2;
}

/** Median, min and max of the rounds' figures, skipping rounds without one; null when none has. */
export function spread(values: readonly (number | null | undefined)[]): Spread | null {
  const xs = values.filter((x): x is number => x != null && Number.isFinite(x));
  if (xs.length === 0) return null;
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}
