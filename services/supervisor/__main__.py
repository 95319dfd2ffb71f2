from services.runtime.service import main
from services.supervisor.service import SupervisorService

raise SystemExit(main(SupervisorService))
