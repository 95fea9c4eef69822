/**
 * Several checkers on one real server (keepalived's semantics: the RS is up
 * only while every checker passes). One attempt runs every checker at once
 * and fails when any fails; the loop's retry count applies to the set.
 */
import type { Probe, ProbeResult } from './health-probe.js';
import type { HealthCheckSpec, SingleCheckSpec } from './model.js';

export function runAllOf(
  checks: SingleCheckSpec[],
  runOne: (check: SingleCheckSpec, done: (r: ProbeResult) => void) => Probe,
  done: (r: ProbeResult) => void,
): Probe {
  const running = new Set<Probe>();
  let over = false;
  let passed = 0;
  let weight: number | undefined;
  let configuredWeight = false;
  const end = (r: ProbeResult): void => {
    over = true;
    for (const p of running) p.cancel();
    running.clear();
    done(r);
  };
  for (const check of checks) {
    // A checker may answer at once (spawn failing); nothing else starts after the set is decided.
    if (over) break;
    const probe = runOne(check, (r) => {
      running.delete(probe);
      if (over) return;
      if (!r.ok) return end({ ...r, reason: `${check.kind}: ${r.reason}` });
      if (r.weight !== undefined) weight = r.weight;
      if (r.configuredWeight) configuredWeight = true;
      if (++passed === checks.length) {
        end({
          ok: true,
          reason: `all ${checks.length} checks passed`,
          ...(weight === undefined ? {} : { weight }),
          ...(configuredWeight && weight === undefined ? { configuredWeight } : {}),
        });
      }
    });
    if (!over) running.add(probe);
  }
  return {
    cancel: () => {
      over = true;
      for (const p of running) p.cancel();
      running.clear();
    },
  };
}

/** Whether the check (or one in its set) may set the weight: a MISC_CHECK with misc_dynamic. */
export function asksForWeight(check: HealthCheckSpec): boolean {
  if (check.kind === 'ALL_OF') return check.checks.some(asksForWeight);
  return check.kind === 'MISC_CHECK' && check.dynamic;
}

/** The check's name for logs: `HTTP_GET+SMTP_CHECK` for a set. */
export const checkName = (check: HealthCheckSpec): string =>
  check.kind === 'ALL_OF' ? check.checks.map((c) => c.kind).join('+') : check.kind;
