/** A real server's checkers: keepalived takes any number, and the RS is up only while all pass. */
import type { SingleCheckSpec } from '../../model.js';
import type { RsDraft } from './draft.js';

/** Adds `check` to the RS: the first stands alone, a second turns them into an ALL_OF set. */
export function addCheck(rs: RsDraft, check: SingleCheckSpec): void {
  const had = rs.check;
  if (!had) rs.check = check;
  else if (had.kind === 'ALL_OF') had.checks.push(check);
  else rs.check = { kind: 'ALL_OF', checks: [had, check] };
}
