-- wrk script for bench/api_load.ts: POSTs real MNIST test digits to /predict, rotating through
-- the JSON bodies of the file given after `--` (one body per line). Each wrk thread runs its own
-- copy of this script and reads the file once in init.
local bodies = {}
local counter = 0

function init(args)
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
  counter = math.random(#bodies)
end

function request()
  counter = counter % #bodies + 1
  return wrk.format("POST", "/predict", { ["Content-Type"] = "application/json" }, bodies[counter])
end
