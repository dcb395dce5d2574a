/**
 * The `chaos` context: the chaos monkey, which terminates instances on a schedule or on demand and
 * measures how kiln recovers by replacement. Other contexts import only this file.
 */
export {
  chooseVictim,
  durationStats,
  inWindow,
  localTime,
  nextTermination,
  outageCheck,
  summarise,
  type ChaosCandidate,
  type ChaosSummary,
  type DurationStats,
  type OutageInput,
  type OutageVerdict,
  type TerminationTiming,
  type VictimChoice,
} from './schedule.js';
export {
  ChaosMonkey,
  OUTAGE_WINDOW_MS,
  type ChaosMode,
  type ChaosMonkeyOptions,
  type ChaosRunInput,
  type ServiceTotalsLike,
} from './monkey.js';
