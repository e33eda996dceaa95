from skuaudit.cli import main

raise SystemExit(main())
