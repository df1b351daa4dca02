-- Argo CD health check for kubesweep Experiments (resource_customizations format).
-- An Experiment is Healthy once it succeeded, Degraded when it failed or is stalled,
-- and Progressing while the operator has not observed its latest spec or trials run.
local hs = {}

local function find_condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == kind then
      return condition
    end
  end
  return nil
end

local function progress(status)
  local trials = status.trials or {}
  local text = tostring(trials.completed or 0) .. " trials completed, " ..
    tostring(trials.running or 0) .. " running"
  if status.bestTrial ~= nil and status.bestTrial.objective ~= nil then
    text = text .. ", best " .. tostring(status.bestTrial.objective) ..
      " (" .. tostring(status.bestTrial.name) .. ")"
  end
  return text
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the kubesweep operator"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local failed = find_condition(status.conditions, "Failed")
if failed ~= nil and failed.status == "True" then
  hs.status = "Degraded"
  hs.message = (failed.reason or "Failed") .. ": " .. (failed.message or "")
  return hs
end

local succeeded = find_condition(status.conditions, "Succeeded")
if succeeded ~= nil and succeeded.status == "True" then
  hs.status = "Healthy"
  hs.message = (succeeded.reason or "Succeeded") .. ": " .. progress(status)
  return hs
end

local stalled = find_condition(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (stalled.reason or "Stalled") .. ": " .. (stalled.message or "")
  return hs
end

hs.status = "Progressing"
hs.message = progress(status)
return hs
