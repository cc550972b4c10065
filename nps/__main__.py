from nps.cli import main

raise SystemExit(main())
