from cuntong.cli import main

raise SystemExit(main())
