from robustify.cli import main

raise SystemExit(main())
