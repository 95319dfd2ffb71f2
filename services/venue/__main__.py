from services.runtime.service import main
from services.venue.service import VenueService

raise SystemExit(main(VenueService))
