-- wrk: POST /apis/v1alpha1/tasks (CreateTask) with one fixed KFP-style task.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"namespace":"ns1","pipelineName":"namespace/ns1/pipeline/bench","runId":"run-bench",'
  .. '"mlmdExecutionID":"7","fingerprint":"fp-bench","created_at":"2024-01-02T03:04:05Z"}'
