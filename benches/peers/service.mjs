// The Restate side of the side-by-side: a service whose handler runs ten
// durable steps (`ctx.run`), each a no-op returning a small value, like
// soar's 10-step playbook of `hostile.noop` steps.
import * as restate from "@restatedev/restate-sdk";

const ten = restate.service({
  name: "ten",
  handlers: {
    run: async (ctx, input) => {
      let last = null;
      for (let i = 1; i <= 10; i++) {
        last = await ctx.run(`s${i}`, async () => ({ step: i, n: input?.n ?? 0 }));
      }
      return { status: "succeeded", last };
    },
  },
});

restate.endpoint().bind(ten).listen(Number(process.env.PORT ?? 9080));
