/** The in-memory FULLNAT lab: deterministic network, Linux-faithful endpoints, scenarios. */
export * from './net.js';
export * from './direct.js';
export * from './client.js';
export * from './linux-rs.js';
export * from './scenarios.js';
export * from './run.js';
export * from './trace.js';
export * from './segment.js';
export * from './pattern.js';
