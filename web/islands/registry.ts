// Every island by name: the server marks where each is rendered (web/island.tsx) and the
// browser bundle hydrates it from the same table (web/islands/hydrate.ts).
import { AttentionExplorer } from "./AttentionExplorer.tsx";
import { AttentionLive } from "./AttentionLive.tsx";
import { BenchRunner } from "./BenchRunner.tsx";
import { MetricCharts } from "./MetricCharts.tsx";
import { ParamScatter } from "./ParamScatter.tsx";
import { Playground } from "./Playground.tsx";
import { RunStatus } from "./RunStatus.tsx";
import { RunsTable } from "./RunsTable.tsx";
import { TrainSpirals } from "./TrainSpirals.tsx";
import { VegaChart } from "./VegaChart.tsx";

export const ISLANDS = {
  AttentionExplorer,
  AttentionLive,
  BenchRunner,
  MetricCharts,
  ParamScatter,
  Playground,
  RunStatus,
  RunsTable,
  TrainSpirals,
  VegaChart,
};

export type IslandName = keyof typeof ISLANDS;
