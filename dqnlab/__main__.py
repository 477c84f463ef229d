from dqnlab.cli.main import main

raise SystemExit(main())
