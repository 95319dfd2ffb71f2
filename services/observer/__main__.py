from services.observer.service import ObserverService
from services.runtime.service import main

raise SystemExit(main(ObserverService))
