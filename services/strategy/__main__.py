from services.runtime.service import main
from services.strategy.service import StrategyService

raise SystemExit(main(StrategyService))
