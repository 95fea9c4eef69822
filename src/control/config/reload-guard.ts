/**
 * What a reload does not apply on the file's word alone. A file emptied or
 * cut short by an editor, a full disk or a half-finished deployment parses
 * cleanly whenever the cut falls between top-level blocks (a cut inside a
 * block is already a syntax error: the block is never closed), and a
 * damaged file says "remove everything" or "back to the defaults" as
 * plainly as an operator would, and one that lost its `bgp` block says "stop
 * announcing this node" as plainly (its `sync` block: "stop sharing this
 * node's connections"). Those outcomes take a forced reload
 * (`fullnat ctl --reload --force`); SIGHUP never forces.
 */
import type { FullnatConfig } from '../model.js';
import type { ConfigDiff } from './diff.js';

/** Why applying `next` over `running` needs force; empty when it does not. */
export function reloadNeedsForce(
  running: FullnatConfig,
  next: FullnatConfig,
  diff: ConfigDiff,
): string[] {
  const reasons: string[] = [];
  if (next.services.length === 0 && running.services.length > 0) {
    const n = running.services.length;
    reasons.push(
      `${next.file} has no virtual_server: the reload would remove every service (${n} running)`,
    );
  }
  // A lost block resets every key it held; the same change written out key by key is an edit.
  if (running.hasDefsBlock && !next.hasDefsBlock && diff.changedDefs.length > 0) {
    reasons.push(
      `${next.file} has no fullnat_defs block (the running configuration has one): the reload would reset ${diff.changedDefs.join(', ')} to the defaults`,
    );
  }
  if (running.bgp && !next.bgp) {
    reasons.push(
      `${next.file} has no bgp block (the running configuration has one): the reload would withdraw every prefix this node announces`,
    );
  }
  if (running.sync && !next.sync) {
    reasons.push(
      `${next.file} has no sync block (the running configuration has one): the reload would stop sharing this node's connections with its peers`,
    );
  }
  return reasons;
}
