from dqnlab.cli import main

raise SystemExit(main())
