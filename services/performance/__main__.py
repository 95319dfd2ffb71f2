from services.performance.service import PerformanceService
from services.runtime.service import main

raise SystemExit(main(PerformanceService))
