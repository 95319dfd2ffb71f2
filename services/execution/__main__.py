from services.execution.service import ExecutionService
from services.runtime.service import main

raise SystemExit(main(ExecutionService))
