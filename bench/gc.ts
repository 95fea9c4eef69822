import v8 from 'node:v8';
import vm from 'node:vm';

/** A full GC before each timed round, so garbage made earlier is not charged to the engine. */
export function collectGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  gc();
}
