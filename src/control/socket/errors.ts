import { isRecord } from './validate.js';

export function errnoCode(e: unknown): string | undefined {
  return isRecord(e) && typeof e.code === 'string' ? e.code : undefined;
}

export function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
