/**
 * What a measurement cost the machine: how busy its CPUs were between two
 * reads of /proc/stat (the whole machine: kernel forwarding and softirqs
 * included, and whatever else runs beside the lab), and the CPU seconds
 * of single processes from /proc/PID/stat.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** The machine's CPU time so far, in clock ticks: all of it, and the idle part (idle + iowait). */
export interface CpuTicks {
  total: number;
  idle: number;
}

export function machineTicks(stat = readFileSync('/proc/stat', 'utf8')): CpuTicks {
  const f = (stat.split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const total = f.slice(0, 8).reduce((n, v) => n + (Number.isFinite(v) ? v : 0), 0);
  return { total, idle: (f[3] ?? 0) + (f[4] ?? 0) };
}

/** Percent of all CPUs busy between two reads. */
export function busyPercent(a: CpuTicks, b: CpuTicks): number {
  const total = b.total - a.total;
  return total <= 0 ? 0 : (100 * (total - (b.idle - a.idle))) / total;
}

/** Clock ticks a second (USER_HZ): 100 on every Linux architecture the project runs on. */
const USER_HZ = 100;

/** User + system CPU seconds of a process so far; null once it is gone. */
export function processCpuSeconds(pid: number, stat?: string): number | null {
  let text = stat;
  if (text === undefined) {
    try {
      text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return null;
    }
  }
  // The command name may hold spaces and parentheses: the fields start after the last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const utime = Number(f[11]);
  const stime = Number(f[12]);
  return Number.isFinite(utime) && Number.isFinite(stime) ? (utime + stime) / USER_HZ : null;
}

export const CPUS = availableParallelism();
