from services.risk.service import RiskService
from services.runtime.service import main

raise SystemExit(main(RiskService))
