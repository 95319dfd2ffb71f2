from services.portfolio.service import PortfolioService
from services.runtime.service import main

raise SystemExit(main(PortfolioService))
