from labformer_client.cli import main

raise SystemExit(main())
